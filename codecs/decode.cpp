#include "codecs/decode.h"

#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace moeforge::codecs {

namespace {

// A logical screen larger than this is refused (the crawl refuses such files by their
// header long before; detect reads only what the crawl stored).
constexpr int64_t kMaxGifPixels = int64_t{1} << 28;

struct Memory {
  const unsigned char* data;
  size_t size;
  size_t pos = 0;
};

int ReadMemory(GifFileType* gif, GifByteType* buf, int len) {
  auto* m = static_cast<Memory*>(gif->UserData);
  size_t take = std::min(static_cast<size_t>(std::max(len, 0)), m->size - m->pos);
  std::memcpy(buf, m->data + m->pos, take);
  m->pos += take;
  return static_cast<int>(take);
}

struct GifCloser {
  void operator()(GifFileType* g) const {
    int err = 0;
    DGifCloseFile(g, &err);
  }
};

// Reads the records up to the first image and draws it (BGR, white background).
cv::Mat FirstGifFrame(GifFileType* gif) {
  int transparent = -1;  // from the Graphic Control Extension before the frame
  GifRecordType rt;
  do {
    if (DGifGetRecordType(gif, &rt) == GIF_ERROR) return {};
    if (rt == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) return {};
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr && ext[0] >= 4 && (ext[1] & 1)) transparent = ext[4];
      while (ext != nullptr)
        if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) return {};
    } else if (rt == IMAGE_DESC_RECORD_TYPE) {
      if (DGifGetImageDesc(gif) == GIF_ERROR) return {};
      const GifImageDesc& d = gif->Image;
      const ColorMapObject* cmap = d.ColorMap != nullptr ? d.ColorMap : gif->SColorMap;
      if (cmap == nullptr || d.Width <= 0 || d.Height <= 0) return {};
      int sw = gif->SWidth > 0 ? gif->SWidth : d.Left + d.Width;
      int sh = gif->SHeight > 0 ? gif->SHeight : d.Top + d.Height;
      if (int64_t{sw} * sh > kMaxGifPixels || int64_t{d.Width} * d.Height > kMaxGifPixels) return {};
      cv::Mat out(sh, sw, CV_8UC3, cv::Scalar(255, 255, 255));
      std::vector<GifByteType> line(static_cast<size_t>(d.Width));
      // Interlaced frames store rows in four passes: every 8th from 0, every 8th from 4,
      // every 4th from 2, every 2nd from 1.
      static const int kStart[] = {0, 4, 2, 1}, kStep[] = {8, 8, 4, 2};
      const int passes = d.Interlace ? 4 : 1;
      for (int pass = 0; pass < passes; ++pass) {
        for (int y = d.Interlace ? kStart[pass] : 0; y < d.Height; y += d.Interlace ? kStep[pass] : 1) {
          if (DGifGetLine(gif, line.data(), d.Width) == GIF_ERROR) return {};  // truncated or corrupt
          int oy = d.Top + y;
          if (oy < 0 || oy >= sh) continue;
          auto* row = out.ptr<cv::Vec3b>(oy);
          for (int x = 0; x < d.Width; ++x) {
            int ox = d.Left + x, idx = line[static_cast<size_t>(x)];
            if (ox < 0 || ox >= sw || idx == transparent || idx >= cmap->ColorCount) continue;
            const GifColorType& c = cmap->Colors[idx];
            row[ox] = cv::Vec3b(c.Blue, c.Green, c.Red);
          }
        }
      }
      return out;
    }
  } while (rt != TERMINATE_RECORD_TYPE);
  return {};  // no image in the file
}

cv::Mat DecodeGif(const unsigned char* data, size_t n, int flags) {
  Memory m{data, n};
  int err = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&m, ReadMemory, &err));
  if (!gif) return {};
  cv::Mat bgr = FirstGifFrame(gif.get());
  // IMREAD_GRAYSCALE and the IMREAD_REDUCED_GRAYSCALE_* flags have bit 0 clear.
  if (bgr.empty() || flags < 0 || (flags & cv::IMREAD_COLOR)) return bgr;
  cv::Mat grey;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  return grey;
}

}  // namespace

cv::Mat Decode(const void* data, size_t n, int flags) {
  const auto* b = static_cast<const unsigned char*>(data);
  if (n >= 6 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0)) return DecodeGif(b, n, flags);
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) return {};
  try {
    cv::Mat buf(1, static_cast<int>(n), CV_8U, const_cast<unsigned char*>(b));
    return cv::imdecode(buf, flags);
  } catch (const cv::Exception&) {
    return {};
  }
}

std::string MissingDecoder(const std::string& format) {
  if (format == "avif") return "no decoder in this build (needs libavif)";
  return "";
}

}  // namespace moeforge::codecs
