package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	s, err := memstore.New(memstore.Config{MaxEntries: 10_000})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()

	// Version 0: create a new session.
	v, err := s.Save(ctx, "session-key", store.Record{
		Data:    []byte(`{"cart":3}`),
		Expires: time.Now().Add(30 * time.Minute),
		UserID:  "alice",
	})
	if err != nil {
		panic(err)
	}

	rec, err := s.Load(ctx, "session-key")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s for %s, current version: %t\n", rec.Data, rec.UserID, rec.Version == v)

	// A second create under the same key loses the compare-and-set.
	_, err = s.Save(ctx, "session-key", store.Record{Expires: time.Now().Add(time.Minute)})
	fmt.Println(err)

	fmt.Println(s.Stats().Entries)
	// Output:
	// {"cart":3} for alice, current version: true
	// store: version conflict
	// 1
}
