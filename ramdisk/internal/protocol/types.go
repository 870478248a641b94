// Package protocol mirrors protocol/ramdisk.ts: the JSON messages between the ramdisk and
// its site agent. The TypeScript module is the source of truth; the shared vectors in
// protocol/ramdisk-vectors.json keep both sides in step (see vectors_test.go).
package protocol

import "encoding/json"

// Version is RAMDISK_PROTOCOL_VERSION: every message carries it as "v".
const Version = 1

// MaxMessageBytes is MAX_RAMDISK_MESSAGE_BYTES: larger requests or answers are refused.
const MaxMessageBytes = 1024 * 1024

// Kernel parameters the boot files give the ramdisk (RAMDISK_KERNEL_PARAMS).
const (
	ParamURL   = "mp.url"
	ParamToken = "mp.token"
)

// Step names (RAMDISK_STEPS), Ironic's where Ironic has one.
const (
	StepInspect              = "inspect"
	StepEraseDevicesMetadata = "erase_devices_metadata"
	StepEraseDevices         = "erase_devices"
	StepWriteImage           = "write_image"
	StepWriteConfigdrive     = "write_configdrive"
	StepSetRescuePassword    = "set_rescue_password"
	StepReboot               = "reboot"
	StepPoweroff             = "poweroff"
)

// Steps lists every step name, in the TypeScript order.
var Steps = []string{
	StepInspect, StepEraseDevicesMetadata, StepEraseDevices, StepWriteImage,
	StepWriteConfigdrive, StepSetRescuePassword, StepReboot, StepPoweroff,
}

// RootDeviceHints are Ironic's root device hints; a disk must match every one given.
type RootDeviceHints struct {
	// Size is an integer (GiB) or a string such as ">= 100"; disks.ParseSizeHint reads it.
	Size       json.RawMessage `json:"size,omitempty"`
	Model      *string         `json:"model,omitempty"`
	Serial     *string         `json:"serial,omitempty"`
	WWN        *string         `json:"wwn,omitempty"`
	Name       *string         `json:"name,omitempty"`
	Rotational *bool           `json:"rotational,omitempty"`
	Vendor     *string         `json:"vendor,omitempty"`
}

// WriteImageArgs are write_image's arguments.
type WriteImageArgs struct {
	URL        string           `json:"url"`
	SHA256     string           `json:"sha256"`
	Format     string           `json:"format"` // "raw" or "raw+gzip"
	RootDevice *RootDeviceHints `json:"root_device,omitempty"`
}

// WriteConfigdriveArgs are write_configdrive's arguments (the image is always gzipped).
type WriteConfigdriveArgs struct {
	URL        string           `json:"url"`
	SHA256     string           `json:"sha256"`
	RootDevice *RootDeviceHints `json:"root_device,omitempty"`
}

// EraseArgs are erase_devices(_metadata)'s arguments.
type EraseArgs struct {
	Skip []string `json:"skip,omitempty"`
}

// RescuePasswordArgs are set_rescue_password's arguments.
type RescuePasswordArgs struct {
	HashedPassword string `json:"hashed_password"`
}

// Step is one step handed out in a heartbeat answer; Args is decoded per Name.
type Step struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

// Inventory is ironic-python-agent's inventory shape (nullable fields are pointers).
type Inventory struct {
	CPU          CPU          `json:"cpu"`
	Memory       Memory       `json:"memory"`
	Disks        []Disk       `json:"disks"`
	Interfaces   []Interface  `json:"interfaces"`
	SystemVendor SystemVendor `json:"system_vendor"`
	Boot         Boot         `json:"boot"`
	Hostname     *string      `json:"hostname"`
}

type CPU struct {
	ModelName    *string  `json:"model_name"`
	Frequency    *string  `json:"frequency"`
	Count        int      `json:"count"`
	Architecture string   `json:"architecture"`
	Flags        []string `json:"flags"`
	SocketCount  *int     `json:"socket_count"`
}

type Memory struct {
	Total      int64 `json:"total"`
	PhysicalMB int64 `json:"physical_mb"`
}

type Disk struct {
	Name       string  `json:"name"` // "/dev/sda"
	Model      *string `json:"model"`
	Size       int64   `json:"size"`
	Rotational bool    `json:"rotational"`
	WWN        *string `json:"wwn"`
	Serial     *string `json:"serial"`
	Vendor     *string `json:"vendor"`
	ByPath     *string `json:"by_path"`
}

type Interface struct {
	Name        string  `json:"name"`
	MACAddress  string  `json:"mac_address"`
	IPv4Address *string `json:"ipv4_address"`
	HasCarrier  bool    `json:"has_carrier"`
	Driver      *string `json:"driver"`
	SpeedMbps   *int    `json:"speed_mbps"`
	PXEEnabled  *bool   `json:"pxe_enabled,omitempty"`
}

type SystemVendor struct {
	ProductName  *string `json:"product_name"`
	SerialNumber *string `json:"serial_number"`
	Manufacturer *string `json:"manufacturer"`
}

type Boot struct {
	CurrentBootMode string  `json:"current_boot_mode"` // "bios" or "uefi"
	PXEInterface    *string `json:"pxe_interface"`
}

// Step results.
type InspectResult struct {
	Inventory Inventory `json:"inventory"`
}

type ErasedDisk struct {
	Name   string `json:"name"`
	Method string `json:"method"` // "metadata", "discard" or "zero"
}

type EraseResult struct {
	Disks []ErasedDisk `json:"disks"`
}

type WriteImageResult struct {
	Disk         string  `json:"disk"`
	BytesWritten int64   `json:"bytes_written"`
	Seconds      float64 `json:"seconds"`
}

type ConfigdriveResult struct {
	Disk      string `json:"disk"`
	Partition string `json:"partition"`
}

// Empty is the result of steps that return nothing ({}).
type Empty struct{}

// LogLine is one log line; Progress is the fraction done of the step, when known.
type LogLine struct {
	At       string   `json:"at"`
	Level    string   `json:"level"` // debug, info, warn, error
	Message  string   `json:"message"`
	Step     string   `json:"step,omitempty"`
	Progress *float64 `json:"progress,omitempty"`
}

// Requests (ramdisk → agent). Constructors fill V and Type.
type Hello struct {
	V       int     `json:"v"`
	Type    string  `json:"type"`
	Token   string  `json:"token"`
	Version string  `json:"version"`
	BootMAC *string `json:"boot_mac"` // null when the boot interface is unknown
}

type Heartbeat struct {
	V       int    `json:"v"`
	Type    string `json:"type"`
	Session string `json:"session"`
}

type Result struct {
	V       int    `json:"v"`
	Type    string `json:"type"`
	Session string `json:"session"`
	Step    string `json:"step"`
	Status  string `json:"status"` // succeeded or failed
	Result  any    `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
}

type Log struct {
	V       int       `json:"v"`
	Type    string    `json:"type"`
	Session string    `json:"session"`
	Lines   []LogLine `json:"lines"`
}

func NewHello(token, version string, bootMAC *string) Hello {
	return Hello{V: Version, Type: "hello", Token: token, Version: version, BootMAC: bootMAC}
}

func NewHeartbeat(session string) Heartbeat {
	return Heartbeat{V: Version, Type: "heartbeat", Session: session}
}

func NewResult(session, step string, result any, err error) Result {
	r := Result{V: Version, Type: "result", Session: session, Step: step, Status: "succeeded", Result: result}
	if err != nil {
		r.Status, r.Result, r.Error = "failed", nil, Truncate(err.Error(), MaxTextChars)
	}
	return r
}

func NewLog(session string, lines []LogLine) Log {
	return Log{V: Version, Type: "log", Session: session, Lines: lines}
}

// Answer is any answer (agent → ramdisk); which fields are set depends on Type
// ("hello", "heartbeat", "ok" or "error"). DecodeAnswer validates before filling it.
type Answer struct {
	V                  int    `json:"v"`
	Type               string `json:"type"`
	Session            string `json:"session,omitempty"`
	HeartbeatIntervalS int    `json:"heartbeat_interval_s,omitempty"`
	Steps              []Step `json:"steps,omitempty"`
	Error              string `json:"error,omitempty"`
}
