package runner

import (
	"context"
	"fmt"
	"path/filepath"

	"metalplane/ramdisk/internal/disks"
	"metalplane/ramdisk/internal/image"
	"metalplane/ramdisk/internal/inventory"
	"metalplane/ramdisk/internal/protocol"
	"metalplane/ramdisk/internal/rescue"
)

// execute runs one step and returns its result object.
func (r *Runner) execute(ctx context.Context, step protocol.Step) (any, error) {
	args := protocol.ArgsFor(step.Name)
	if err := step.DecodeArgs(args); err != nil {
		return nil, err
	}
	switch step.Name {
	case protocol.StepInspect:
		inv, err := inventory.Collect(r.cfg.Root, r.cfg.BootMAC)
		if err != nil {
			return nil, err
		}
		return protocol.InspectResult{Inventory: *inv}, nil
	case protocol.StepEraseDevicesMetadata, protocol.StepEraseDevices:
		return r.erase(step, args.(*protocol.EraseArgs))
	case protocol.StepWriteImage:
		return r.writeImage(ctx, step, args.(*protocol.WriteImageArgs))
	case protocol.StepWriteConfigdrive:
		a := args.(*protocol.WriteConfigdriveArgs)
		d, err := r.rootDisk(a.RootDevice)
		if err != nil {
			return nil, err
		}
		part, err := image.WriteConfigdrive(ctx, r.path(d.Name), d.Name, *a)
		if err != nil {
			return nil, err
		}
		return protocol.ConfigdriveResult{Disk: d.Name, Partition: part}, nil
	case protocol.StepSetRescuePassword:
		return protocol.Empty{}, rescue.SetPassword(r.cfg.Root, args.(*protocol.RescuePasswordArgs).HashedPassword)
	case protocol.StepReboot, protocol.StepPoweroff:
		return protocol.Empty{}, nil // done by runStep once the result is acknowledged
	}
	return nil, fmt.Errorf("unknown step %q", step.Name)
}

// path is where a disk named /dev/X is opened: under Root, so tests use files.
func (r *Runner) path(name string) string { return filepath.Join(r.cfg.Root, name) }

func (r *Runner) rootDisk(hints *protocol.RootDeviceHints) (protocol.Disk, error) {
	all, err := inventory.Disks(r.cfg.Root)
	if err != nil {
		return protocol.Disk{}, err
	}
	return disks.Select(all, hints)
}

func (r *Runner) erase(step protocol.Step, args *protocol.EraseArgs) (any, error) {
	all, err := inventory.Disks(r.cfg.Root)
	if err != nil {
		return nil, err
	}
	res := protocol.EraseResult{Disks: []protocol.ErasedDisk{}}
	for _, d := range all {
		if disks.Skipped(d.Name, args.Skip) {
			r.log("info", step.ID, "skipping %s", d.Name)
			continue
		}
		method := "metadata"
		if step.Name == protocol.StepEraseDevicesMetadata {
			err = disks.EraseMetadata(r.path(d.Name))
		} else {
			r.log("info", step.ID, "erasing %s (%d bytes)", d.Name, d.Size)
			method, err = disks.Erase(r.path(d.Name), func(done, total int64) {
				p := float64(done) / float64(total)
				r.logs.add("info", step.ID, fmt.Sprintf("%s: %.0f%% erased", d.Name, p*100), &p)
			})
		}
		if err != nil {
			return nil, err
		}
		res.Disks = append(res.Disks, protocol.ErasedDisk{Name: d.Name, Method: method})
	}
	return res, nil
}

func (r *Runner) writeImage(ctx context.Context, step protocol.Step, args *protocol.WriteImageArgs) (any, error) {
	d, err := r.rootDisk(args.RootDevice)
	if err != nil {
		return nil, err
	}
	r.log("info", step.ID, "writing %s image to %s", args.Format, d.Name)
	w, err := image.WriteImage(ctx, r.path(d.Name), *args, func(done, total int64) {
		var p *float64
		if total > 0 {
			f := min(float64(done)/float64(total), 1)
			p = &f
		}
		r.logs.add("info", step.ID, fmt.Sprintf("%d MiB downloaded", done>>20), p)
	})
	if err != nil {
		return nil, err
	}
	rate := float64(w.Bytes) / (1 << 20) / max(w.Seconds, 0.001)
	r.log("info", step.ID, "wrote %d bytes to %s in %.1f s (%.0f MiB/s)", w.Bytes, d.Name, w.Seconds, rate)
	return protocol.WriteImageResult{Disk: d.Name, BytesWritten: w.Bytes, Seconds: w.Seconds}, nil
}
