package echosession

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sessionkit/sessionkit/session"
)

// Middleware returns Echo middleware that gives every request a session
// from m (see From) and saves it just before the response header is sent.
// Register it before the handlers that use sessions.
func Middleware(m *session.Manager) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			res, req := c.Response(), c.Request()
			defer func() {
				c.SetResponse(res)
				c.SetRequest(req)
			}()
			var err error
			m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.SetRequest(r)
				inner := echo.NewResponse(w, c.Echo())
				inner.Status = http.StatusOK // as Echo's own responses start
				c.SetResponse(inner)
				err = next(c)
			})).ServeHTTP(res, req)
			return err
		}
	}
}

// From returns the session of the request c carries. Outside Middleware's
// chain it returns a session whose Err is session.ErrNoManager and which
// saves nothing. It never returns nil.
func From(c echo.Context) *session.Session {
	if c == nil || c.Request() == nil {
		return session.FromContext(context.Background())
	}
	return session.From(c.Request())
}
