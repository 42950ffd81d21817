package ginsession

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sessionkit/sessionkit/session"
)

// Middleware returns gin middleware that gives every request a session
// from m (see From) and saves it just before the response header is sent.
// Register it before the handlers that use sessions.
func Middleware(m *session.Manager) gin.HandlerFunc {
	return func(c *gin.Context) {
		gw, req := c.Writer, c.Request
		defer func() { c.Writer, c.Request = gw, req }()
		m.Handler(http.HandlerFunc(func(sw http.ResponseWriter, r *http.Request) {
			c.Request = r
			c.Writer = &writer{ResponseWriter: gw, sw: sw}
			c.Next()
		})).ServeHTTP(gw, req)
	}
}

// From returns the session of the request c carries. Outside Middleware's
// chain it returns a session whose Err is session.ErrNoManager and which
// saves nothing. It never returns nil.
func From(c *gin.Context) *session.Session {
	if c == nil || c.Request == nil {
		return session.FromContext(context.Background())
	}
	return session.From(c.Request)
}

// writer is c.Writer inside Middleware's chain. gin's own writer (the
// embedded ResponseWriter) keeps the status, size and "written" state; every
// write goes through sw, the Manager's ResponseWriter, which saves the
// session first and then writes through gin's writer.
type writer struct {
	gin.ResponseWriter
	sw http.ResponseWriter
}

var _ gin.ResponseWriter = (*writer)(nil)

// WriteHeader only records the status, as gin's writer does: the header,
// and the session with it, go out on the first write (or WriteHeaderNow).
func (w *writer) WriteHeader(code int) { w.ResponseWriter.WriteHeader(code) }

// WriteHeaderNow saves the session and sends the header.
func (w *writer) WriteHeaderNow() {
	if w.Written() {
		return
	}
	// The Manager's writer saves the session, then passes the status on
	// to gin's writer, which only records it; or, if saving failed, it has
	// the error response written instead (and gin's writer is then written).
	w.sw.WriteHeader(w.Status())
	w.ResponseWriter.WriteHeaderNow()
}

func (w *writer) Write(b []byte) (int, error) { return w.sw.Write(b) }

func (w *writer) WriteString(s string) (int, error) { return io.WriteString(w.sw, s) }

// Flush saves the session, sends the header if it has not gone yet, and
// flushes.
func (w *writer) Flush() {
	http.NewResponseController(w.sw).Flush() //nolint:errcheck // Flusher has no error
}

// Hijack saves the session and hands over the connection.
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.sw).Hijack()
}

// Unwrap lets http.ResponseController reach the Manager's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.sw }
