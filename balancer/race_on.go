//go:build race

package balancer

// raceEnabled: built with -race.
const raceEnabled = true
