package main

import (
	"net/http"
	"testing"

	"github.com/sessionkit/sessionkit/examples/internal/shoptest"
	"github.com/sessionkit/sessionkit/session"
)

func TestShop(t *testing.T) {
	shoptest.Run(t, func(m *session.Manager) http.Handler { return newRouter(m) })
}
