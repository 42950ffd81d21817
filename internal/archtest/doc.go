// Package archtest holds no code: its test enforces the import arrows of
// docs/architecture.md on every package of the module.
package archtest
