package main

import (
	"net/http"
	"os"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/sessionkit/sessionkit/examples/internal/shoptest"
	"github.com/sessionkit/sessionkit/session"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

func TestShop(t *testing.T) {
	shoptest.Run(t, func(m *session.Manager) http.Handler { return newRouter(m) })
}
