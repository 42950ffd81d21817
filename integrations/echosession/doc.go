// Package echosession connects sessionkit's session.Manager to the Echo web
// framework (github.com/labstack/echo/v4).
//
// # Use
//
//	m, err := session.New(session.Config{Store: st})
//	...
//	e := echo.New()
//	e.Use(echosession.Middleware(m))
//	e.POST("/login", func(c echo.Context) error {
//		echosession.From(c).Login(user)
//		return c.JSON(http.StatusOK, map[string]string{"user": user})
//	})
//
// # How it works
//
// Middleware runs the rest of the Echo chain inside Manager.Handler. For
// that part of the chain, c.Request() carries the session in its context
// and c.Response() is a fresh *echo.Response whose Writer is the Manager's
// ResponseWriter, so the session is saved just before the response header
// goes out, as with plain net/http: a new token can still be set, and a
// store failure is answered by session.Config.ErrorHandler (by default 503)
// instead of the handler's response. The Manager's writer in turn writes
// through the original *echo.Response, so middleware before this one sees
// the status that was really sent, and its Before and After hooks run.
//
// An error returned by the chain is returned as usual; Echo's
// HTTPErrorHandler answers it after Middleware has returned, and so after
// the session was saved (its token is already in the response header). If
// saving failed, the Manager's error response has been sent through the
// original *echo.Response, which is then Committed: Echo's
// DefaultHTTPErrorHandler leaves such a response alone, and a custom
// HTTPErrorHandler should check c.Response().Committed likewise.
//
// When the chain returns, or panics, Middleware puts back the request and
// response it was given. After a panic the session is not saved; an outer
// Recover middleware answers directly.
//
// # Concurrency
//
// Middleware's handler is safe for concurrent use; the Session it gives a
// request is safe for use by that request's goroutines (see
// session.Session). The echo.Context itself is not, as Echo documents.
package echosession
