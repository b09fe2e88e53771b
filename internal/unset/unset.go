// Package unset fills the configuration fields a caller left unset (zero
// or negative) with their defaults, the one rule every component's
// configuration follows.
package unset

// Default sets *v to d when *v is zero or negative.
func Default[T ~int | ~int64 | ~uint32 | ~float64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Or returns v, or d when v is zero or negative.
func Or[T ~int | ~int64 | ~uint32 | ~float64](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}
