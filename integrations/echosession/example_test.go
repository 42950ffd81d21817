package echosession_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/labstack/echo/v4"

	"github.com/sessionkit/sessionkit/integrations/echosession"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	m, _ := session.New(session.Config{Store: st})

	r := echo.New()
	r.Use(echosession.Middleware(m))
	r.POST("/login", func(c echo.Context) error {
		echosession.From(c).Login(c.QueryParam("user")) // new session ID: no session fixation
		return c.JSON(http.StatusOK, map[string]string{"user": c.QueryParam("user")})
	})
	r.GET("/whoami", func(c echo.Context) error {
		return c.String(http.StatusOK, echosession.From(c).UserID())
	})

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", "/login?user=alice", nil))
	cookie := rec.Result().Cookies()[0]

	req := httptest.NewRequest("GET", "/whoami", nil)
	req.AddCookie(cookie)
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	fmt.Println(rec.Body.String())
	// Output: alice
}
