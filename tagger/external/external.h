// External taggers through OpenCV dnn: their published preprocessing, exposed so tests
// can check it against independently computed values.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"

namespace moeforge::tagger {

// WD14 (SmilingWolf's taggers): pad to a square with white (centred), resize to `size`
// (area when shrinking, cubic when growing), float BGR 0..255, HWC. Grey input is made BGR.
cv::Mat Wd14Preprocess(const cv::Mat& bgr, int size = 448);

// Illustration2Vec: resize to `size` x `size` (bilinear; area when shrinking), float BGR
// 0..255 minus its mean pixel, HWC.
extern const double kI2vMeanBgr[3];
cv::Mat I2vPreprocess(const cv::Mat& bgr, int size = 224);

// selected_tags.csv (tag_id,name,category,count): the names in row order; the trailing
// empty ",,," row is skipped.
Result<std::vector<std::string>> ReadSelectedTags(const std::string& path);

}  // namespace moeforge::tagger
