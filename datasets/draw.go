package datasets

import (
	"encoding/binary"
	"hash/fnv"
	"math/bits"
)

// SaltedHash is the project's one salted hash of a key: 64-bit FNV-1a of
// the salt, a zero byte and the key. Splits by prompt id (training's
// validation part, evaluation's folds) take it modulo their size; Draw and
// UnitDraw turn it into a uniform number.
func SaltedHash(salt, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum64()
}

// Draw is a uniform number in [0,1) from a seed and a key: FNV-1a of the
// seed's bytes and the key, finished with splitmix64 (FNV mixes the last
// bytes into the low bits only). Exploration draws one per decision id, so
// a decision reproduces.
func Draw(seed uint64, key string) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// UnitDraw is the uniform number in [0,1) a unit (a user, a tenant, ...)
// gets under an experiment's salt: the same on every request, restart and
// replica.
func UnitDraw(salt, unit string) float64 {
	// the hash's big-endian bytes read little-endian, as it always was
	return Draw(bits.ReverseBytes64(SaltedHash(salt, unit)), "")
}
