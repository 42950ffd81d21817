package main

import (
	"testing"

	"github.com/sessionkit/sessionkit/examples/internal/shoptest"
)

func TestShop(t *testing.T) { shoptest.Run(t, newHandler) }
