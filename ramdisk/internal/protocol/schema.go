package protocol

// A small checker for decoded JSON trees, mirroring the JSON Schema constructs that
// protocol/ramdisk.ts uses (object with fixed properties, const, enum, string length and
// pattern, integer and number ranges, arrays, null). Hand-written because the ramdisk uses
// only the standard library; the shared vectors prove it agrees with Ajv.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type check func(v any, path string) error

type props map[string]check

func errAt(path, format string, a ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
}

// object checks a JSON object: only the listed properties, the required ones present.
func object(p props, required ...string) check {
	return func(v any, path string) error {
		m, ok := v.(map[string]any)
		if !ok {
			return errAt(path, "must be an object")
		}
		for _, r := range required {
			if _, ok := m[r]; !ok {
				return errAt(path, "missing %q", r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the first error is deterministic
		for _, k := range keys {
			c, ok := p[k]
			if !ok {
				return errAt(path, "unexpected property %q", k)
			}
			if err := c(m[k], path+"."+k); err != nil {
				return err
			}
		}
		return nil
	}
}

func anyObject(v any, path string) error {
	if _, ok := v.(map[string]any); !ok {
		return errAt(path, "must be an object")
	}
	return nil
}

func emptyObject(v any, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return errAt(path, "must be an object")
	}
	if len(m) > 0 {
		return errAt(path, "must be empty")
	}
	return nil
}

func constInt(want int64) check {
	return func(v any, path string) error {
		n, ok := v.(json.Number)
		if !ok || n.String() != strconv.FormatInt(want, 10) {
			return errAt(path, "must be %d", want)
		}
		return nil
	}
}

func enum(values ...string) check {
	return func(v any, path string) error {
		s, ok := v.(string)
		if !ok || !slices.Contains(values, s) {
			return errAt(path, "must be one of %s", strings.Join(values, ", "))
		}
		return nil
	}
}

// str checks a string's length in characters (as JSON Schema counts) and its pattern.
func str(minLen, maxLen int, pattern string) check {
	var re *regexp.Regexp
	if pattern != "" {
		re = regexp.MustCompile(pattern)
	}
	return func(v any, path string) error {
		s, ok := v.(string)
		if !ok {
			return errAt(path, "must be a string")
		}
		n := utf8.RuneCountInString(s)
		if n < minLen || (maxLen >= 0 && n > maxLen) {
			return errAt(path, "length %d out of range", n)
		}
		if re != nil && !re.MatchString(s) {
			return errAt(path, "does not match %s", pattern)
		}
		return nil
	}
}

// noSpace refuses any Unicode white space: JavaScript's \s covers more than Go's.
func noSpace(c check) check {
	return func(v any, path string) error {
		if err := c(v, path); err != nil {
			return err
		}
		if strings.IndexFunc(v.(string), unicode.IsSpace) >= 0 {
			return errAt(path, "must not contain white space")
		}
		return nil
	}
}

// integer accepts integer literals only (Ajv also takes 1.0; no message of ours sends that).
func integer(lo, hi int64) check {
	return func(v any, path string) error {
		n, ok := v.(json.Number)
		if !ok {
			return errAt(path, "must be an integer")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return errAt(path, "must be an integer")
		}
		if i < lo || i > hi {
			return errAt(path, "must be between %d and %d", lo, hi)
		}
		return nil
	}
}

func number(lo, hi float64) check {
	return func(v any, path string) error {
		n, ok := v.(json.Number)
		if !ok {
			return errAt(path, "must be a number")
		}
		f, err := n.Float64()
		if err != nil || f < lo || f > hi {
			return errAt(path, "must be between %g and %g", lo, hi)
		}
		return nil
	}
}

func boolean(v any, path string) error {
	if _, ok := v.(bool); !ok {
		return errAt(path, "must be a boolean")
	}
	return nil
}

func nullable(c check) check {
	return func(v any, path string) error {
		if v == nil {
			return nil
		}
		return c(v, path)
	}
}

func array(item check, minItems, maxItems int) check {
	return func(v any, path string) error {
		a, ok := v.([]any)
		if !ok {
			return errAt(path, "must be an array")
		}
		if len(a) < minItems || len(a) > maxItems {
			return errAt(path, "must have %d to %d items", minItems, maxItems)
		}
		for i, x := range a {
			if err := item(x, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
}

// integerOrString is the size hint: an integer or a string (read later by the disks package).
func integerOrString(v any, path string) error {
	if _, ok := v.(string); ok {
		return nil
	}
	return integer(-1<<63, 1<<63-1)(v, path)
}

// parseTree decodes JSON keeping numbers exact and refusing trailing data.
func parseTree(data []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid JSON: trailing data")
	}
	return v, nil
}
