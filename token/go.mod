module github.com/sessionkit/sessionkit/token

go 1.26.0

replace github.com/sessionkit/sessionkit => ..

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/sessionkit/sessionkit v0.0.0-00010101000000-000000000000
	golang.org/x/crypto v0.59.0
)

require golang.org/x/sys v0.50.0 // indirect
