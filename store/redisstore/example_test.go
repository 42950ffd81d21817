package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// A store on the Redis the CLI's --redis flag names. It needs a running
// server, so this example is compiled but not run.
func Example() {
	cfg, err := redisstore.ParseURL("redis://127.0.0.1:6379/0?key_prefix=myapp:sess:")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := redisstore.New(ctx, cfg)
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
	// Extend the session without rewriting its data, unless it changed.
	if err := s.Touch(ctx, "session-key", v, time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	// Log alice out everywhere.
	n, err := s.DeleteUser(ctx, "alice")
	fmt.Println(n, err)
}

func ExampleParseURL() {
	for _, u := range []string{
		"redis://:secret@127.0.0.1:6379/2",
		"redis://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
		"redis-sentinel://10.0.0.1,10.0.0.2,10.0.0.3/mymaster?timeout=500ms",
	} {
		cfg, err := redisstore.ParseURL(u)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q master=%q db=%d timeout=%v\n", cfg.Addrs, cfg.SentinelMaster, cfg.DB, cfg.Timeout)
	}
	// Output:
	// ["127.0.0.1:6379"] master="" db=2 timeout=0s
	// ["10.0.0.1:7000" "10.0.0.2:7000" "10.0.0.3:7000"] master="" db=0 timeout=0s
	// ["10.0.0.1:26379" "10.0.0.2:26379" "10.0.0.3:26379"] master="mymaster" db=0 timeout=500ms
}
