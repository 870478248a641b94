package protocol

// The schemas of protocol/ramdisk.ts, transcribed; keep them in step with it.

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTextChars is the longest error or log message the schemas allow.
const MaxTextChars = 4096

var (
	idCheck     = str(1, 128, `^[A-Za-z0-9._:-]+$`)
	sha256Check = str(0, -1, `^[0-9a-f]{64}$`)
	urlCheck    = noSpace(str(0, 2048, `^https?://\S+$`))
	macCheck    = str(0, -1, `^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)
	hintsCheck  = object(props{
		"size": integerOrString, "model": str(0, -1, ""), "serial": str(0, -1, ""),
		"wwn": str(0, -1, ""), "name": str(0, -1, ""), "rotational": boolean, "vendor": str(0, -1, ""),
	})
	eraseCheck = object(props{"skip": array(str(0, -1, ""), 0, 64)})
)

// StepArgsChecks are RAMDISK_STEP_ARGS_SCHEMAS.
var stepArgsChecks = map[string]check{
	StepInspect:              emptyObject,
	StepEraseDevicesMetadata: eraseCheck,
	StepEraseDevices:         eraseCheck,
	StepWriteImage: object(props{
		"url": urlCheck, "sha256": sha256Check, "format": enum("raw", "raw+gzip"), "root_device": hintsCheck,
	}, "url", "sha256", "format"),
	StepWriteConfigdrive: object(props{"url": urlCheck, "sha256": sha256Check, "root_device": hintsCheck},
		"url", "sha256"),
	StepSetRescuePassword: object(props{"hashed_password": str(1, 512, `^[!-9;-~]+$`)}, "hashed_password"),
	StepReboot:            emptyObject,
	StepPoweroff:          emptyObject,
}

func stepCheck(v any, path string) error {
	err := object(props{"id": idCheck, "name": enum(Steps...), "args": anyObject}, "id", "name", "args")(v, path)
	if err != nil {
		return err
	}
	m := v.(map[string]any)
	return stepArgsChecks[m["name"].(string)](m["args"], path+".args")
}

var logLineCheck = object(props{
	"at": str(0, 64, ""), "level": enum("debug", "info", "warn", "error"),
	"message": str(0, MaxTextChars, ""), "step": idCheck, "progress": number(0, 1),
}, "at", "level", "message")

var requestChecks = map[string]check{
	"hello": object(props{
		"v": constInt(1), "type": enum("hello"),
		"token":   str(16, 256, `^[A-Za-z0-9_-]+$`),
		"version": str(0, 64, ""), "boot_mac": nullable(macCheck),
	}, "v", "type", "token", "version", "boot_mac"),
	"heartbeat": object(props{"v": constInt(1), "type": enum("heartbeat"), "session": idCheck},
		"v", "type", "session"),
	"result": object(props{
		"v": constInt(1), "type": enum("result"), "session": idCheck, "step": idCheck,
		"status": enum("succeeded", "failed"), "result": anyObject, "error": str(0, MaxTextChars, ""),
	}, "v", "type", "session", "step", "status"),
	"log": object(props{"v": constInt(1), "type": enum("log"), "session": idCheck,
		"lines": array(logLineCheck, 1, 500)}, "v", "type", "session", "lines"),
}

var answerChecks = map[string]check{
	"hello": object(props{"v": constInt(1), "type": enum("hello"), "session": idCheck,
		"heartbeat_interval_s": integer(1, 300)}, "v", "type", "session", "heartbeat_interval_s"),
	"heartbeat": object(props{"v": constInt(1), "type": enum("heartbeat"), "steps": array(stepCheck, 0, 16)},
		"v", "type", "steps"),
	"ok":    object(props{"v": constInt(1), "type": enum("ok")}, "v", "type"),
	"error": object(props{"v": constInt(1), "type": enum("error"), "error": str(0, -1, "")}, "v", "type", "error"),
}

// oneOf dispatches on "type", as the schemas' oneOf effectively does.
func oneOf(checks map[string]check, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("message must be an object")
	}
	t, _ := m["type"].(string)
	c, ok := checks[t]
	if !ok {
		return fmt.Errorf("message: unknown type %q", t)
	}
	return c(v, "message")
}

// ValidateRequest checks a request's JSON against RAMDISK_REQUEST_SCHEMA.
func ValidateRequest(data []byte) error {
	v, err := parseTree(data)
	if err != nil {
		return err
	}
	return oneOf(requestChecks, v)
}

// DecodeAnswer checks an answer's JSON against RAMDISK_ANSWER_SCHEMA and decodes it.
func DecodeAnswer(data []byte) (*Answer, error) {
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", MaxMessageBytes)
	}
	v, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if err := oneOf(answerChecks, v); err != nil {
		return nil, err
	}
	var a Answer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decoding answer: %w", err)
	}
	return &a, nil
}

// DecodeArgs decodes a step's (already validated) arguments into out.
func (s Step) DecodeArgs(out any) error {
	dec := json.NewDecoder(strings.NewReader(string(s.Args)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("step %s (%s): bad arguments: %w", s.ID, s.Name, err)
	}
	return nil
}

// Truncate shortens s to at most n characters, for error and log messages.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ArgsFor returns a pointer to the Go type of a step's arguments.
func ArgsFor(name string) any {
	switch name {
	case StepEraseDevices, StepEraseDevicesMetadata:
		return &EraseArgs{}
	case StepWriteImage:
		return &WriteImageArgs{}
	case StepWriteConfigdrive:
		return &WriteConfigdriveArgs{}
	case StepSetRescuePassword:
		return &RescuePasswordArgs{}
	default:
		return &Empty{}
	}
}
