// Package store defines the contract between the session Manager and the
// places sessions live: Redis, PostgreSQL, an Olric or NATS cluster, or the
// memory of one process.
//
// A Store has three operations: Load, Save and Delete, keyed by an opaque
// string. Save is a compare-and-set on a version number, which lets the
// Manager merge concurrent requests of one session instead of losing one of
// them. Stores with more abilities implement the optional interfaces
// Toucher, UserIndex and Notifier; callers find them by type assertion, and
// each interface says what the Manager does when a store lacks it.
//
// This package imports nothing of sessionkit's own and no third-party code,
// so that store adapters depend on it alone. Every adapter proves that it
// keeps the contract by passing the suite in package storetest.
package store
