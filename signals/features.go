package signals

import (
	"fmt"
	"unsafe"
)

// FeatureID names one campaign-independent feature of an impression. The
// values are not persisted (segment keys hash the feature values, not the
// ids), but config files use the names from FeatureNames.
type FeatureID uint8

// Features an Extractor reads from a bid request. Where a field is missing,
// empty or 0 (for OpenRTB integers without a pointer type, where 0 means
// "not given") the value is Unknown.
const (
	FeaturePublisher   FeatureID = iota // app.publisher.id, else site.publisher.id
	FeatureBundle                       // app.bundle
	FeatureDomain                       // app.domain, else site.domain
	FeatureGenre                        // content.genre (app.content, else site.content)
	FeatureSeries                       // content.series
	FeatureLivestream                   // content.livestream: "0" or "1" (any int8 as decimal)
	FeatureLanguage                     // content.language
	FeatureNetwork                      // content.network.id, else content.network.name
	FeatureChannel                      // content.channel.id, else content.channel.name
	FeatureRating                       // content.contentrating
	FeatureDeviceType                   // device.devicetype (AdCOM: 3 CTV, 7 set-top box, ...)
	FeatureMake                         // device.make
	FeatureOS                           // device.os
	FeatureCountry                      // device.geo.country
	FeatureRegion                       // device.geo.region
	FeatureMetro                        // device.geo.metro
	FeatureHour                         // viewer's local hour "0".."23" (device.geo.utcoffset, else UTC)
	FeaturePlacement                    // "plcmt:N" (imp.video.plcmt), else "placement:N" (imp.video.placement)
	FeaturePodSeq                       // imp.video.podseq
	FeatureSlotInPod                    // imp.video.slotinpod
	FeatureMaxDuration                  // imp.video.maxduration (seconds)
	FeatureDeal                         // first non-empty imp.pmp.deals[].id
	FeatureSSAI                         // imp.ssai
	FeaturePosition                     // ad position in the content, from imp.video.startdelay (see positionOf)
	FeatureSlot                         // the imp's slot in its ad pod, from imp.video.slotinpod (see slotOf)
	FeaturePodSize                      // ad slots of the imp's pod, bucketed (see podSizeBucket)
	FeatureDaypart                      // TV daypart of the viewer's local hour (device.geo.utcoffset; see daypartOf)
	FeatureContentLen                   // content.len, bucketed (see contentLenBucket)
	FeatureCategory                     // first content.cat with its taxonomy, "cattax:cat" (cattax 1 when absent)
	NumFeatures                         // number of features, not a feature
)

// numFeaturesV1 is how many features there were before FeaturePosition:
// records written then (remembered bids in older snapshots) hold these.
const numFeaturesV1 = int(FeaturePosition)

// Unknown is the value of a feature the request does not carry.
const Unknown = "unknown"

var featureNames = [NumFeatures]string{
	"publisher", "bundle", "domain", "genre", "series", "livestream", "language",
	"network", "channel", "rating", "devicetype", "make", "os", "country", "region",
	"metro", "hour", "placement", "podseq", "slotinpod", "maxduration", "deal", "ssai",
	"position", "slot", "podsize", "daypart", "contentlen", "category",
}

// String is the config name of f.
func (f FeatureID) String() string {
	if f < NumFeatures {
		return featureNames[f]
	}
	return fmt.Sprintf("feature(%d)", uint8(f))
}

// FeatureByName returns the feature with the given config name.
func FeatureByName(name string) (FeatureID, bool) {
	for i, n := range featureNames {
		if n == name {
			return FeatureID(i), true
		}
	}
	return 0, false
}

// FeatureNames returns the config names of all features, in FeatureID order.
// The slice is new on every call.
func FeatureNames() []string {
	return append([]string(nil), featureNames[:]...)
}

// unknownBytes is a read-only view of Unknown (no copy, no package state).
func unknownBytes() []byte {
	return unsafe.Slice(unsafe.StringData(Unknown), len(Unknown))
}

// Imp is one impression of a request: its id, its feature values and its deal
// ids. An Imp filled by an Extractor points into the Extractor's buffers (see
// Extract); one built with SetFeature points to the caller's bytes.
type Imp struct {
	ID    []byte
	Deals [][]byte // every non-empty imp.pmp.deals[].id, in order
	feat  [NumFeatures][]byte
}

// Feature returns the value of feature f, Unknown when not set. The bytes are
// read-only.
func (imp *Imp) Feature(f FeatureID) []byte {
	if f >= NumFeatures || len(imp.feat[f]) == 0 {
		return unknownBytes()
	}
	return imp.feat[f]
}

// SetFeature sets feature f to v (an empty v means Unknown). The Imp keeps v
// (no copy): the caller must not change it while the Imp is in use.
func (imp *Imp) SetFeature(f FeatureID, v []byte) {
	if f < NumFeatures {
		imp.feat[f] = v
	}
}

// SetFeatureString sets the feature named name to value, for exposures posted
// with pre-extracted features instead of a bid request. It keeps a read-only
// view of value (no copy).
func (imp *Imp) SetFeatureString(name, value string) error {
	f, ok := FeatureByName(name)
	if !ok {
		return fmt.Errorf("unknown feature %q", name)
	}
	imp.feat[f] = unsafe.Slice(unsafe.StringData(value), len(value))
	return nil
}

// SetFeatures sets the features of the map (name -> value); every other
// feature becomes Unknown. An unknown name is an error naming it, and leaves
// the Imp unchanged.
func (imp *Imp) SetFeatures(m map[string]string) error {
	for name := range m {
		if _, ok := FeatureByName(name); !ok {
			return fmt.Errorf("%s: unknown feature", name)
		}
	}
	imp.feat = [NumFeatures][]byte{}
	for name, v := range m {
		if err := imp.SetFeatureString(name, v); err != nil {
			return err
		}
	}
	return nil
}
