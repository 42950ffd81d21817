module github.com/sessionkit/sessionkit

go 1.26.0
