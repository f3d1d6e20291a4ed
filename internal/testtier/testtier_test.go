package testtier

import (
	"flag"
	"strconv"
	"testing"
)

// TestSize flips -short in place, so it must not run in parallel.
func TestSize(t *testing.T) {
	short := flag.Lookup("test.short")
	defer short.Value.Set(short.Value.String())
	for _, tc := range []struct {
		short bool
		env   string
		want  int
		long  bool
	}{
		{false, "", 2, false},
		{false, "1", 3, true},
		{true, "", 1, false},
		{true, "1", 1, false}, // a race run stays short
	} {
		short.Value.Set(strconv.FormatBool(tc.short))
		t.Setenv(Env, tc.env)
		if got := Size(1, 2, 3); got != tc.want {
			t.Errorf("-short=%v %s=%q: Size = %d, want %d", tc.short, Env, tc.env, got, tc.want)
		}
		if got := Long(); got != tc.long {
			t.Errorf("-short=%v %s=%q: Long = %v, want %v", tc.short, Env, tc.env, got, tc.long)
		}
	}
}
