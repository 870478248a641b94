package protocol

import (
	"encoding/json"
	"os"
	"testing"
)

// The shared vectors of protocol/ramdisk-vectors.json, also checked by Ajv in
// test/unit/ramdisk-protocol.test.ts: both sides must agree on every message.
type vector struct {
	Name    string          `json:"name"`
	Valid   bool            `json:"valid"`
	Message json.RawMessage `json:"message"`
}

type vectorFile struct{ Requests, Answers []vector }

func readVectorFile() (*vectorFile, error) {
	data, err := os.ReadFile("../../../protocol/ramdisk-vectors.json")
	if err != nil {
		return nil, err
	}
	var doc vectorFile
	return &doc, json.Unmarshal(data, &doc)
}

func loadVectors(t *testing.T) (requests, answers []vector) {
	t.Helper()
	doc, err := readVectorFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Requests) == 0 || len(doc.Answers) == 0 {
		t.Fatal("no vectors")
	}
	return doc.Requests, doc.Answers
}

func TestRequestVectors(t *testing.T) {
	requests, _ := loadVectors(t)
	for _, v := range requests {
		t.Run(v.Name, func(t *testing.T) {
			err := ValidateRequest(v.Message)
			if (err == nil) != v.Valid {
				t.Fatalf("valid=%v, got error %v", v.Valid, err)
			}
		})
	}
}

func TestAnswerVectors(t *testing.T) {
	_, answers := loadVectors(t)
	for _, v := range answers {
		t.Run(v.Name, func(t *testing.T) {
			a, err := DecodeAnswer(v.Message)
			if (err == nil) != v.Valid {
				t.Fatalf("valid=%v, got error %v", v.Valid, err)
			}
			if err != nil {
				return
			}
			// Valid step arguments also decode into their Go types, strictly.
			for _, s := range a.Steps {
				if err := s.DecodeArgs(ArgsFor(s.Name)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// The requests the ramdisk builds validate against the schema.
func TestBuiltRequestsValidate(t *testing.T) {
	mac := "52:54:00:12:34:56"
	p := 0.5
	long := make([]byte, 10000)
	for i := range long {
		long[i] = 'e'
	}
	for _, m := range []any{
		NewHello("tok_0123456789abcdef", "0.1.0", &mac),
		NewHello("tok_0123456789abcdef", "0.1.0", nil),
		NewHeartbeat("s1"),
		NewResult("s1", "c1", EraseResult{Disks: []ErasedDisk{{Name: "/dev/sda", Method: "zero"}}}, nil),
		NewResult("s1", "c1", Empty{}, nil),
		NewResult("s1", "c1", nil, errString(string(long))),
		NewLog("s1", []LogLine{{At: "2026-01-01T00:00:00Z", Level: "info", Message: "x", Step: "c1", Progress: &p}}),
	} {
		data, _ := json.Marshal(m)
		if err := ValidateRequest(data); err != nil {
			t.Errorf("%s: %v", data[:min(len(data), 80)], err)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
