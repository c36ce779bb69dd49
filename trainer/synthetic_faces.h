// A workspace of synthetic tagged faces (tests, benches, the bf16 check): crops whose
// hair colour, eye colour and smile follow their tags, with the detector, face and tagger
// rows that detect and tag would leave. Not used by the stages themselves.
#pragma once

#include <string>

#include "core/status.h"

namespace moeforge::trainer {

// Creates WS (moeforge.db, crops/) with `n` faces of 48 px, tagged by 'builtin:test'.
Status MakeSyntheticFaceWorkspace(const std::string& root, int n);

}  // namespace moeforge::trainer
