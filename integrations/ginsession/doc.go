// Package ginsession connects sessionkit's session.Manager to the gin web
// framework (github.com/gin-gonic/gin).
//
// # Use
//
//	m, err := session.New(session.Config{Store: st})
//	...
//	r := gin.New()
//	r.Use(ginsession.Middleware(m))
//	r.POST("/login", func(c *gin.Context) {
//		ginsession.From(c).Login(user)
//		c.JSON(http.StatusOK, gin.H{"user": user})
//	})
//
// # How it works
//
// Middleware runs the rest of the gin chain inside Manager.Handler. For that
// part of the chain, c.Request carries the session in its context and
// c.Writer sends everything through the Manager's ResponseWriter, so the
// session is saved just before the response header goes out, as with plain
// net/http: a new token can still be set, and a store failure is answered
// by session.Config.ErrorHandler (by default 503) instead of the handler's
// response. gin's own bookkeeping (Status, Size, Written) keeps working,
// and gin's lazy status (c.Status then a later write) is kept: the session
// is saved when the header is really sent, not when the status is chosen.
// A request whose handlers write nothing has its session saved when the
// chain returns, before gin writes the header.
//
// When the chain returns, or panics, Middleware puts back the c.Writer and
// c.Request it was given, so handlers before it see their own. After a
// panic the session is not saved; an outer gin.Recovery answers directly.
//
// # Concurrency
//
// Middleware's handler is safe for concurrent use, as gin requires; the
// Session it gives a request is safe for use by that request's goroutines
// (see session.Session). The gin.Context itself follows gin's rules: copy it
// (c.Copy) before handing it to another goroutine.
package ginsession
