//go:build !unix

package wasm

import (
	"fmt"
	"io/fs"
	"os"
)

// checkPrivate says what is wrong with info, the Lstat (or, of an open file, the Stat) of name, for a
// directory of the cache (dir) or a file of one. Off unix only the type is checked (a symbolic link or
// the wrong type is refused): Windows keeps who may write a file in its ACL, which Go's FileInfo does not
// show, and the user's cache directory (%LocalAppData%) is the user's alone unless someone changed its ACL.
// So a cache given a directory that others can write is not refused there: that is the caller's to avoid.
func checkPrivate(name string, info fs.FileInfo, dir bool) error {
	return checkType(name, info, dir)
}

// ownerChecked says checkPrivate checks the owner and mode, for the tests.
const ownerChecked = false

// openNoFollow opens name for reading, refusing a symbolic link. Without O_NOFOLLOW it checks that the
// file opened is the one Lstat saw, so that a link swapped in between is not followed either.
func openNoFollow(name string) (*os.File, error) {
	before, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("wasm cache: %s is a symbolic link", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if after, err := f.Stat(); err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("wasm cache: %s changed while it was opened", name)
	}
	return f, nil
}
