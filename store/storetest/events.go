package storetest

import (
	"slices"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// EventLog records the events of a store.Notifier subscription, for the
// tests of a store's change feed: give its Add to Subscribe. The zero
// value is ready to use; its methods are safe for concurrent use.
type EventLog struct {
	mu     sync.Mutex
	events []store.Event
	signal chan struct{} // a token after each Add; made on first use
}

func (l *EventLog) signalLocked() chan struct{} {
	if l.signal == nil {
		l.signal = make(chan struct{}, 1)
	}
	return l.signal
}

// Add records ev.
func (l *EventLog) Add(ev store.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	sig := l.signalLocked()
	l.mu.Unlock()
	select {
	case sig <- struct{}{}:
	default:
	}
}

// Events returns a copy of the events recorded so far, in order.
func (l *EventLog) Events() []store.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// WaitFor waits up to d for a recorded event, at index from or later,
// that matches, and returns its index, or -1 if none came in time.
func (l *EventLog) WaitFor(from int, d time.Duration, match func(store.Event) bool) int {
	timer := time.NewTimer(d)
	defer timer.Stop()
	l.mu.Lock()
	sig := l.signalLocked()
	l.mu.Unlock()
	for {
		// An Add after this lookup leaves a token in sig.
		if i := l.lookup(from, match); i >= 0 {
			return i
		}
		select {
		case <-sig:
		case <-timer.C:
			return l.lookup(from, match)
		}
	}
}

// lookup returns the index of the first event at from or later that
// matches, or -1.
func (l *EventLog) lookup(from int, match func(store.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := max(from, 0); i < len(l.events); i++ {
		if match(l.events[i]) {
			return i
		}
	}
	return -1
}
