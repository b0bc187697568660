package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// planHashVersion changes whenever what the hash covers changes, so that a
// hash recorded by an older bot never matches by accident.
const planHashVersion = "kubectl-gitops/plan/v1"

// PlanHash is a stable hash of what applying r would ask of the cluster:
// its rendered objects (Secret values included: a changed password is a
// changed plan) and the settings that decide how they are applied (the
// app, its namespace and inventory, prune, Helm release or server-side
// apply). It does not depend on the order objects render in, on the
// commit, or on files that do not change the render, so approvals of an
// unchanged plan can outlive a rebase. The hash is a digest: it shows no
// value.
func PlanHash(r *Rendered) (string, error) {
	if r.Err != nil {
		return "", r.Err
	}
	if r.Result == nil {
		return "", errors.New("no render to hash")
	}
	type entry struct {
		ref  diff.Ref
		data []byte
	}
	entries := make([]entry, 0, len(r.Result.Objects))
	for _, obj := range r.Result.Objects {
		data, err := json.Marshal(obj.Object) // maps encode with sorted keys
		if err != nil {
			return "", fmt.Errorf("hashing %s: %w", diff.RefOf(obj).Qualified(), err)
		}
		entries = append(entries, entry{diff.RefOf(obj), data})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.ref.Group, b.ref.Group), cmp.Compare(a.ref.Kind, b.ref.Kind),
			cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name),
			cmp.Compare(a.ref.Version, b.ref.Version), slices.Compare(a.data, b.data))
	})
	h := sha256.New()
	settings, err := json.Marshal(struct {
		Version   string `json:"v"`
		Inventory string `json:"inventory"`
		Namespace string `json:"namespace"`
		Prune     bool   `json:"prune"`
		Helm      bool   `json:"helm"`
		Objects   int    `json:"objects"`
	}{planHashVersion, r.Inventory().App, r.Namespace, r.Prune(nil), r.IsHelm(), len(entries)})
	if err != nil {
		return "", err
	}
	writeChunk(h, settings)
	for _, e := range entries {
		writeChunk(h, e.data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// writeChunk writes data with its length first, so that no two lists of
// chunks hash alike by moving bytes between neighbours.
func writeChunk(h io.Writer, data []byte) {
	_, _ = h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(data)))) // a hash.Hash never fails to write
	_, _ = h.Write(data)
}
