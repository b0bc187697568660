package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// target is a platform the images are built for.
type target struct {
	platform v1.Platform
	machine  elf.Machine // of the platform's executables
}

// platform returns the target named os/arch, if it is one we build.
func platform(s string) (target, bool) {
	switch s {
	case "linux/amd64":
		return target{v1.Platform{OS: "linux", Architecture: "amd64"}, elf.EM_X86_64}, true
	case "linux/arm64":
		return target{v1.Platform{OS: "linux", Architecture: "arm64"}, elf.EM_AARCH64}, true
	}
	return target{}, false
}

// checkBinary returns an error unless path is a statically linked Linux
// executable for t: the image has no C library or dynamic loader, so
// anything else fails there with a bare "no such file or directory".
func checkBinary(path string, t target) error {
	rebuild := fmt.Sprintf("build it with CGO_ENABLED=0 GOOS=%s GOARCH=%s go build", t.platform.OS, t.platform.Architecture)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no such file: %s", rebuild)
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file: pass the path of the executable")
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("not an ELF executable (%w): %s", err, rebuild)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("an ELF %s, not an executable: %s", f.Type, rebuild)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("an executable for %s, not Linux: %s", f.OSABI, rebuild)
	}
	if f.Machine != t.machine {
		return fmt.Errorf("an executable for %s, not %s (%s): %s", f.Machine, t.platform.Architecture, t.machine, rebuild)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := make([]byte, min(p.Filesz, 256))
			n, _ := p.ReadAt(interp, 0)
			return fmt.Errorf("dynamically linked (interpreter %q), but the image has no dynamic loader or C library: %s", trimNUL(interp[:n]), rebuild)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("read the executable's dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("dynamically linked (needs %v), but the image has no shared libraries: %s", libs, rebuild)
	}
	return nil
}

func trimNUL(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}
