package ginsession_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/sessionkit/sessionkit/integrations/ginsession"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	m, _ := session.New(session.Config{Store: st})

	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(ginsession.Middleware(m))
	r.POST("/login", func(c *gin.Context) {
		ginsession.From(c).Login(c.Query("user")) // new session ID: no session fixation
		c.JSON(http.StatusOK, gin.H{"user": c.Query("user")})
	})
	r.GET("/whoami", func(c *gin.Context) {
		c.String(http.StatusOK, "%s", ginsession.From(c).UserID())
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
