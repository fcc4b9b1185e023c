// Package count writes a count with its noun in the right number, for
// the example programs' output ("1 stream", "2 streams").
package count

import "fmt"

// integer is any integer type.
type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// Of returns n followed by one when n is 1 and by many otherwise:
// Of(1, "reply", "replies") is "1 reply", Of(0, "reply", "replies") is
// "0 replies".
func Of[N integer](n N, one, many string) string {
	word := many
	if n == 1 {
		word = one
	}
	return fmt.Sprint(n) + " " + word
}
