package session

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// errReplaced is returned by Write once Config.ErrorHandler has answered
// the request instead of the handler.
var errReplaced = errors.New("session: response replaced by the session error handler")

// responseWriter saves the session just before the response header goes
// out, so that the token can still be set and a store error can still be
// answered by the error handler.
type responseWriter struct {
	http.ResponseWriter
	s         *Session
	committed bool // the first commit ran
	failed    bool // the error handler answered; the handler's output is dropped
}

// commitOnce runs the first commit and reports whether the handler's
// response may go out.
func (w *responseWriter) commitOnce() bool {
	if w.committed {
		return !w.failed
	}
	w.committed = true
	if err := w.s.commit(); err != nil {
		w.failed = true
		w.s.m.handleError(w.ResponseWriter, w.s.req, err)
	}
	return !w.failed
}

func (w *responseWriter) WriteHeader(code int) {
	informational := code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
	if !informational && !w.commitOnce() || w.failed {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.commitOnce() {
		return 0, errReplaced
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher (for server-sent events).
func (w *responseWriter) Flush() {
	if !w.commitOnce() {
		return
	}
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // Flusher has no error
}

// Hijack implements http.Hijacker (for WebSockets): the session is saved
// first.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.commitOnce() {
		return nil, nil, errReplaced
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish runs after the handler returned.
func (w *responseWriter) finish() {
	if !w.committed {
		w.commitOnce()
		return
	}
	if !w.failed {
		w.s.commitLate()
	}
}

// commitLate saves changes made after the response had started. A stored
// session's changes are saved; a session that did not exist before cannot
// be created, since its token can no longer reach the client.
func (s *Session) commitLate() {
	s.mu.Lock()
	pending := len(s.ops) > 0 || s.renew || s.destroyed
	unsaved := s.id.IsZero() && len(s.ops) > 0
	s.mu.Unlock()
	if !pending {
		return
	}
	if unsaved {
		s.m.cfg.Logger.Error("session: a new session was changed after the response started; it cannot be saved " +
			"because its token can no longer be sent (change it before writing, or call Session.Save)")
		return
	}
	if err := s.commit(); err != nil {
		s.m.cfg.Logger.Error("session: saving changes made after the response started failed", "err", err)
	}
}
