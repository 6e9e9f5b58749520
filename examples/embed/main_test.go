package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tt := range []struct {
		args       []string
		code       int
		want, errs string
	}{
		{[]string{"SMcompatible"}, 0, "warning: the conversion is irreversible and restarts the cluster\nallowed: making the EncryptCluster call\n", ""},
		{[]string{"generalCipher"}, 1, "warning: the conversion is irreversible and restarts the cluster\n" +
			"refused: crypt_algorithm generalCipher is not allowed for tenant class regulated; it allows only SMcompatible (request.body.encrypt.crypt_algorithm)\n" +
			"  fix: convert with crypt_algorithm SMcompatible, the algorithm this tenant's class allows\n", ""},
		// Without an algorithm the example refuses to pick one: usage, exit 2.
		{nil, 2, "", "usage: embed ALGORITHM"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), &out, &errOut, tt.args)
		if code != tt.code || out.String() != tt.want || !strings.HasPrefix(errOut.String(), tt.errs) {
			t.Errorf("%v: exit %d (want %d)\n got %q\nwant %q\nstderr %q", tt.args, code, tt.code, out.String(), tt.want, errOut.String())
		}
	}
}
