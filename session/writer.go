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
	err := w.s.commit()
	w.s.mu.Lock()
	w.s.headerSent = true
	w.s.mu.Unlock()
	if err != nil {
		w.failed = true
		h := w.ResponseWriter.Header()
		for _, k := range handlerHeaders {
			h.Del(k)
		}
		w.s.m.handleError(w.ResponseWriter, w.s.req, err)
	}
	return !w.failed
}

// handlerHeaders are the headers a handler may have set for the response
// that the error handler replaces. Headers set by outer middleware (CORS,
// tracing) are kept.
var handlerHeaders = []string{
	"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
	"Content-Range", "Content-Type", "Etag", "Expires", "Last-Modified", "Location", "Refresh",
	"Set-Cookie", "Trailer",
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
// session's changes are saved; a session that would need a new token (one
// created, logged in or renewed) is not, since the token can no longer
// reach the client: the error is logged.
func (s *Session) commitLate() {
	s.mu.Lock()
	pending := len(s.ops) > 0 || s.renew || s.destroyed
	s.mu.Unlock()
	if !pending {
		return
	}
	if err := s.commit(); err != nil {
		s.m.cfg.Logger.Error("session: changes made after the response started were not saved", "err", err)
	}
}
