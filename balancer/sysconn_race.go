//go:build linux && race

package balancer

// raceEnabled: built with -race.
const raceEnabled = true
