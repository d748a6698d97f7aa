package observers_test

import (
	"context"
	"strings"
	"testing"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/local"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A volume list the node could not observe is refused before anything
// starts, naming the entry and the key.
func TestBadVolumesRefused(t *testing.T) {
	ok := config.Volume{Name: "a", Backend: config.BackendLocal, Device: "vda"}
	for _, tc := range []struct {
		vols []config.Volume
		want string
	}{
		{[]config.Volume{ok, {Name: "b", Backend: "gpfs"}}, `volumes[1].backend: "gpfs" is not a backend kind`},
		{[]config.Volume{ok, ok}, `volumes[1].name: "a" is also the name of volumes[0]`},
		{[]config.Volume{{Backend: config.BackendLocal, Device: "vda"}}, `volumes[0].name`},
		{[]config.Volume{{Name: "n", Backend: config.BackendNetApp, Endpoint: "https://c1", Username: "u"}}, `volumes[0].password: required`},
		{[]config.Volume{{Name: "p", Backend: config.BackendPureStorage, Endpoint: "https://fa"}}, `volumes[0].api-token: required`},
		{[]config.Volume{{Name: "h", Backend: config.BackendHTTPJSON, Endpoint: "http://127.0.0.1:1", Fields: map[string]string{"iops": "x"}}}, `volumes[0].fields.iops: unknown figure`},
		{[]config.Volume{{Name: "l", Backend: config.BackendLocal}}, `volumes[0]: a local volume needs device`},
	} {
		_, err := jmnode.New(jmnode.Config{DataDir: t.TempDir(), File: config.File{Volumes: tc.vols}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.vols, err, tc.want)
		}
	}
}

// A secret that cannot be read stops the start with an error naming the
// volume, the key and the variable, never a value.
func TestUnreadableSecretStopsStart(t *testing.T) {
	t.Setenv("JM_TEST_TOKEN", "")
	n, err := jmnode.New(jmnode.Config{Name: "n1", DataDir: t.TempDir(), WebListen: "127.0.0.1:0", Logger: harness.Logger(t), File: config.File{Volumes: []config.Volume{
		{Name: "fa1", Backend: config.BackendPureStorage, Endpoint: "https://127.0.0.1:1", APIToken: config.Secret{Env: "JM_TEST_TOKEN"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if want := `volumes[0] ("fa1"): api-token: secret variable JM_TEST_TOKEN is not set`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("run: %v, want %q", err, want)
	}
}

// --demo without volumes in a file observes the machine's disks.
func TestDemoObservesLocalDisks(t *testing.T) {
	disks, err := local.Devices("")
	if err != nil {
		t.Fatal(err)
	}
	rn := harness.StartNode(t, jmnode.Config{Demo: true})
	var list struct {
		Volumes []result `json:"volumes"`
	}
	get(t, rn.URL+"/api/v1/volumes", &list)
	var got []string
	for _, v := range list.Volumes {
		got = append(got, v.Volume)
	}
	if strings.Join(got, ",") != strings.Join(disks, ",") {
		t.Errorf("volumes %v, want the disks %v", got, disks)
	}
	if len(disks) == 0 {
		t.Log("this machine has no disk in /proc/diskstats: the list is empty")
	}
}
