module github.com/sessionkit/sessionkit/store/redisstore

go 1.26.0

replace github.com/sessionkit/sessionkit => ../..

require (
	github.com/redis/rueidis v1.0.79
	github.com/sessionkit/sessionkit v0.0.0-00010101000000-000000000000
)

require golang.org/x/sys v0.47.0 // indirect
