package memcachedstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memcachedstore"
)

// A store on three Memcached servers. It needs running servers, so this
// example is compiled but not run.
func Example() {
	ctx := context.Background()
	s, err := memcachedstore.New(ctx, memcachedstore.Config{
		Servers:   []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
		KeyPrefix: "myapp:",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	v, err := s.Save(ctx, "session-key", store.Record{
		Data:    []byte(`{"cart":3}`),
		Expires: time.Now().Add(30 * time.Minute),
		UserID:  "alice",
	})
	if err != nil {
		log.Fatal(err)
	}
	// Extend the session, unless it changed since.
	if err := s.Touch(ctx, "session-key", v, time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	// Log alice out everywhere (see the package doc for what eviction
	// can hide from it).
	n, err := s.DeleteUser(ctx, "alice")
	fmt.Println(n, err)
}
