package testclock_test

import (
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
)

func Example() {
	c := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	start := c.Now()
	c.Advance(90 * time.Second)
	fmt.Println(c.Now().Sub(start), c.Now().Format(time.TimeOnly))
	// Output: 1m30s 00:01:30
}
