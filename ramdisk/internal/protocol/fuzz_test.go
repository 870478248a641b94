package protocol

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeAnswer: whatever the network sends, decoding never panics, and an accepted
// answer's steps always decode into their Go types. `go test -fuzz=FuzzDecodeAnswer
// ./internal/protocol` explores further; plain `go test` runs the seeds (the vectors).
func FuzzDecodeAnswer(f *testing.F) {
	data, err := readVectorFile()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range data.Answers {
		f.Add([]byte(v.Message))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		for _, s := range a.Steps {
			if err := s.DecodeArgs(ArgsFor(s.Name)); err != nil {
				t.Fatalf("accepted step does not decode: %v", err)
			}
		}
		if _, err := json.Marshal(a); err != nil {
			t.Fatal(err)
		}
	})
}
