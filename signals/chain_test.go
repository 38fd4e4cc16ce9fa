package signals

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/model"
)

func TestNewChainErrors(t *testing.T) {
	f := func(levels [][]string, wantErr string) {
		t.Helper()
		_, err := NewChain(levels)
		if wantErr == "" {
			if err != nil {
				t.Fatalf("NewChain(%v): %v", levels, err)
			}
			return
		}
		if err == nil || err.Error() != wantErr {
			t.Fatalf("NewChain(%v) = %v; want %q", levels, err, wantErr)
		}
	}
	f([][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}}, "")
	f(nil, "")
	f([][]string{{"publisher"}, {"bundle"}, {"gnre"}}, `levels[2]: unknown feature "gnre"`)
	f([][]string{{"publisher"}, {}}, "levels[1]: no feature")
	f([][]string{{"publisher"}, {"genre", "publisher"}}, `levels[1]: feature "publisher" is already used by levels[0]`)
	f([][]string{{"publisher", "bundle", "domain", "genre", "series", "language", "network", "channel", "rating"}}, "levels[0]: 9 features, at most 8")
}

func ctvImp(t *testing.T) *Imp {
	t.Helper()
	var imp Imp
	if err := imp.SetFeatures(map[string]string{
		"publisher": "pub-1203", "bundle": "com.example.tv", "genre": "Sports", "metro": "501", "devicetype": "3",
	}); err != nil {
		t.Fatal(err)
	}
	return &imp
}

func TestChainKeys(t *testing.T) {
	c, err := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}})
	if err != nil {
		t.Fatal(err)
	}
	imp := ctvImp(t)
	root := model.RootKey("demo-ctv-purchase")
	path := c.Keys(root, imp, nil)
	want := []model.Key{root}
	for _, v := range []string{"pub-1203", "com.example.tv", "Sports", "501"} {
		want = append(want, want[len(want)-1].Child([]byte(v)))
	}
	if len(path) != c.Depth()+1 || c.Depth() != 4 {
		t.Fatalf("path has %d keys, depth %d", len(path), c.Depth())
	}
	for i := range want {
		if path[i] != want[i] {
			t.Fatalf("path[%d] = %x; want %x", i, path[i], want[i])
		}
	}
	if got := string(c.AppendPath(nil, "demo-ctv-purchase", imp)); got != "demo-ctv-purchase/pub-1203/com.example.tv/Sports/501" {
		t.Fatalf("AppendPath = %q", got)
	}
	var labels []string
	for _, l := range c.Labels(imp, nil) {
		labels = append(labels, string(l))
	}
	if strings.Join(labels, "|") != "pub-1203|com.example.tv|Sports|501" {
		t.Fatalf("Labels = %q", labels)
	}
	if got := strings.Join(c.LevelNames(), ","); got != "publisher,bundle,genre,metro" {
		t.Fatalf("LevelNames = %q", got)
	}
	// A missing feature is the value "unknown", not a hole in the path.
	var bare Imp
	p := c.Keys(root, &bare, nil)
	if p[1] != root.Child([]byte(Unknown)) {
		t.Fatal("missing publisher is not keyed as unknown")
	}
}

func TestChainMultiFeatureLevel(t *testing.T) {
	c, err := NewChain([][]string{{"publisher"}, {"genre", "metro"}})
	if err != nil {
		t.Fatal(err)
	}
	imp := ctvImp(t)
	root := model.RootKey("c")
	path := c.Keys(root, imp, nil)
	// The documented, persisted encoding: FNV-1a 64 of len-prefixed values.
	h := uint64(fnvOffset)
	for _, v := range []string{"Sports", "501"} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
		h = fnv1a(h, n[:])
		h = fnv1a(h, []byte(v))
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h)
	if want := root.Child([]byte("pub-1203")).Child(b[:]); path[2] != want {
		t.Fatalf("multi-feature key = %x; want %x", path[2], want)
	}
	// Values are length-prefixed: moving bytes between features changes the key.
	var other Imp
	other.SetFeatureString("publisher", "pub-1203")
	other.SetFeatureString("genre", "Sports5")
	other.SetFeatureString("metro", "01")
	if c.Keys(root, &other, nil)[2] == path[2] {
		t.Fatal("multi-feature key does not separate values")
	}
	if got := string(c.AppendPath(nil, "c", imp)); got != "c/pub-1203/Sports+501" {
		t.Fatalf("AppendPath = %q", got)
	}
	if got := string(c.Labels(imp, nil)[1]); got != "Sports+501" {
		t.Fatalf("Labels[1] = %q", got)
	}
	if got := c.LevelNames()[1]; got != "genre+metro" {
		t.Fatalf("LevelNames[1] = %q", got)
	}
}

func TestChainKeysNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	c, err := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre", "language"}, {"metro"}})
	if err != nil {
		t.Fatal(err)
	}
	x := NewExtractor()
	r, err := x.Extract(fixtures(t)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	root := model.RootKey("demo-ctv-purchase")
	dst := make([]model.Key, 0, c.Depth()+1)
	var path []byte
	n := testing.AllocsPerRun(100, func() {
		dst = c.Keys(root, &r.Imps[0], dst[:0])
		path = c.AppendPath(path[:0], "demo-ctv-purchase", &r.Imps[0])
	})
	if n != 0 {
		t.Fatalf("Keys allocates %v times", n)
	}
}

func TestImpFeatures(t *testing.T) {
	var imp Imp
	if err := imp.SetFeatures(map[string]string{"publisher": "p", "nope": "x"}); err == nil || err.Error() != "nope: unknown feature" {
		t.Fatalf("SetFeatures with an unknown name: %v", err)
	}
	if string(imp.Feature(FeaturePublisher)) != Unknown {
		t.Fatal("a failed SetFeatures changed the Imp")
	}
	imp.SetFeature(FeatureGenre, []byte("News"))
	if string(imp.Feature(FeatureGenre)) != "News" || string(imp.Feature(NumFeatures)) != Unknown {
		t.Fatal("SetFeature/Feature")
	}
	for i, name := range FeatureNames() {
		f, ok := FeatureByName(name)
		if !ok || int(f) != i || f.String() != name {
			t.Fatalf("FeatureByName(%q) = %v, %v", name, f, ok)
		}
	}
	if _, ok := FeatureByName("Publisher"); ok {
		t.Fatal("feature names are case-sensitive")
	}
}
