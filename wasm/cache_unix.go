//go:build unix

package wasm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate says what is wrong with info, the Lstat (or, of an open file, the Stat) of name, for a
// directory of the cache (dir) or a file of one: a symbolic link, the wrong type, another user's, or
// writable by group or others. Any of these lets someone else put an entry, or machine code, in place.
func checkPrivate(name string, info fs.FileInfo, dir bool) error {
	if err := checkType(name, info, dir); err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("wasm cache: %s: no owner to check", name)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("wasm cache: %s is owned by uid %d, not by this user (uid %d)", name, st.Uid, uid)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("wasm cache: %s is writable by group or others (mode %#o)", name, perm)
	}
	return nil
}

// ownerChecked says checkPrivate checks the owner and mode, for the tests.
const ownerChecked = true

// openNoFollow opens name for reading, refusing a symbolic link instead of following it (the error is
// ELOOP on most systems, EMLINK or EFTYPE on some BSDs: an error either way).
func openNoFollow(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("wasm cache: %s is a symbolic link", name)
	}
	return f, err
}
