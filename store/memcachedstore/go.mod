module github.com/sessionkit/sessionkit/store/memcachedstore

go 1.26.0

replace github.com/sessionkit/sessionkit => ../..

require github.com/sessionkit/sessionkit v0.0.0-00010101000000-000000000000

require github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c
