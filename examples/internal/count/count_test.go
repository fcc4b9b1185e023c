package count

import "testing"

func TestOf(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Of(0, "stream", "streams"), "0 streams"},
		{Of(1, "stream", "streams"), "1 stream"},
		{Of(2, "stream", "streams"), "2 streams"},
		{Of(uint64(1), "reply", "replies"), "1 reply"},
		{Of(int64(-1), "resume", "resumes"), "-1 resumes"},
		{Of(uint64(1<<64-1), "record", "records"), "18446744073709551615 records"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
