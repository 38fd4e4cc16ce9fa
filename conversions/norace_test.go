//go:build !race

package conversions

const raceEnabled = false
