// Command gin is the nethttp example on the gin framework: log in, add
// items to a cart kept in the session, read the cart, log out. Sessions
// come from the ginsession middleware. See ../README.md.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sessionkit/sessionkit/integrations/ginsession"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatal(err)
	}
}

func run(addr string) error {
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: newRouter(m), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("gin example listening on http://%s", addr)
	return srv.ListenAndServe()
}

// newRouter returns the application: a gin engine whose middleware starts
// with ginsession.Middleware, so that every handler can call
// ginsession.From.
func newRouter(m *session.Manager) *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery(), ginsession.Middleware(m))
	r.POST("/login", func(c *gin.Context) {
		var in struct {
			User string `json:"user" binding:"required"`
		}
		if err := c.ShouldBindJSON(&in); err != nil {
			c.String(http.StatusBadRequest, `want {"user": "..."}`)
			return
		}
		ginsession.From(c).Login(in.User) // new session ID: no session fixation
		c.JSON(http.StatusOK, gin.H{"user": in.User})
	})
	r.POST("/cart", func(c *gin.Context) {
		s := ginsession.From(c)
		if s.UserID() == "" {
			c.String(http.StatusUnauthorized, "log in first")
			return
		}
		var in struct {
			Item string `json:"item" binding:"required"`
		}
		if err := c.ShouldBindJSON(&in); err != nil {
			c.String(http.StatusBadRequest, `want {"item": "..."}`)
			return
		}
		// Update, not Value then Set: two concurrent requests both add
		// their item.
		err := session.Update(s, "cart", func(cart []string) []string { return append(cart, in.Item) })
		if err != nil {
			c.String(http.StatusInternalServerError, "cannot update the cart")
			return
		}
		c.Status(http.StatusNoContent)
	})
	r.GET("/cart", func(c *gin.Context) {
		s := ginsession.From(c)
		user := s.UserID()
		if user == "" {
			c.String(http.StatusUnauthorized, "log in first")
			return
		}
		cart, _ := session.Value[[]string](s, "cart")
		if cart == nil {
			cart = []string{}
		}
		c.JSON(http.StatusOK, cartResponse{User: user, Cart: cart})
	})
	r.POST("/logout", func(c *gin.Context) {
		if err := ginsession.From(c).Destroy(); err != nil {
			return // the Manager answers with its error response
		}
		c.Status(http.StatusNoContent)
	})
	return r
}

type cartResponse struct {
	User string   `json:"user"`
	Cart []string `json:"cart"`
}
