package main

import (
	"bytes"
	"context"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tt := range []struct{ algorithm, want string }{
		{"SMcompatible", "warning: the conversion is irreversible and restarts the cluster\nallowed: making the EncryptCluster call\n"},
		{"generalCipher", "warning: the conversion is irreversible and restarts the cluster\n" +
			"refused: crypt_algorithm generalCipher is not allowed for tenant class regulated; it allows only SMcompatible (request.body.encrypt.crypt_algorithm)\n" +
			"  fix: convert with crypt_algorithm SMcompatible, the algorithm this tenant's class allows\n"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), &out, []string{tt.algorithm}); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.algorithm, out.String(), tt.want)
		}
	}
}
