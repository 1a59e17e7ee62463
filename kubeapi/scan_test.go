package kubeapi

import (
	"io"
	"testing"
	"time"
)

// TestDecodeEventsStream checks that an event is handed out as soon as it
// is complete: the decoder must not wait for more data.
func TestDecodeEventsStream(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	dec := newDecoder(pr)
	for _, ev := range []string{
		`{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"}}}` + "\n",
		`{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"2"}}}`, // no newline
		"\n\n" + `{"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"3"}}}`,
	} {
		go pw.Write([]byte(ev))
		got := make(chan error, 1)
		go func() {
			_, err := decodeEvent[*Service](dec)
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(patience):
			t.Fatalf("%s was not decoded before the next event", ev)
		}
	}
	pw.Close()
	if _, err := decodeEvent[*Service](dec); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}
