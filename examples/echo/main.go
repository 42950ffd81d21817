// Command echo is the nethttp example on the Echo framework: log in, add
// items to a cart kept in the session, read the cart, log out. Sessions
// come from the echosession middleware. See ../README.md.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/sessionkit/sessionkit/integrations/echosession"
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
	e := newRouter(m)
	e.HideBanner = true
	srv := &http.Server{Addr: addr, Handler: e, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("echo example listening on http://%s", addr)
	return srv.ListenAndServe()
}

// newRouter returns the application: an Echo instance whose middleware
// starts with echosession.Middleware, so that every handler can call
// echosession.From.
func newRouter(m *session.Manager) *echo.Echo {
	e := echo.New()
	e.Use(middleware.Recover(), echosession.Middleware(m))
	e.POST("/login", func(c echo.Context) error {
		var in struct {
			User string `json:"user"`
		}
		if err := c.Bind(&in); err != nil || in.User == "" {
			return echo.NewHTTPError(http.StatusBadRequest, `want {"user": "..."}`)
		}
		echosession.From(c).Login(in.User) // new session ID: no session fixation
		return c.JSON(http.StatusOK, map[string]string{"user": in.User})
	})
	e.POST("/cart", func(c echo.Context) error {
		s := echosession.From(c)
		if s.UserID() == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "log in first")
		}
		var in struct {
			Item string `json:"item"`
		}
		if err := c.Bind(&in); err != nil || in.Item == "" {
			return echo.NewHTTPError(http.StatusBadRequest, `want {"item": "..."}`)
		}
		// Update, not Value then Set: two concurrent requests both add
		// their item.
		err := session.Update(s, "cart", func(cart []string) []string { return append(cart, in.Item) })
		if err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "cannot update the cart").SetInternal(err)
		}
		return c.NoContent(http.StatusNoContent)
	})
	e.GET("/cart", func(c echo.Context) error {
		s := echosession.From(c)
		user := s.UserID()
		if user == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "log in first")
		}
		cart, _ := session.Value[[]string](s, "cart")
		if cart == nil {
			cart = []string{}
		}
		return c.JSON(http.StatusOK, cartResponse{User: user, Cart: cart})
	})
	e.POST("/logout", func(c echo.Context) error {
		if err := echosession.From(c).Destroy(); err != nil {
			return nil // the Manager answers with its error response
		}
		return c.NoContent(http.StatusNoContent)
	})
	return e
}

type cartResponse struct {
	User string   `json:"user"`
	Cart []string `json:"cart"`
}
