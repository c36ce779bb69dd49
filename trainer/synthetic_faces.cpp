#include "trainer/synthetic_faces.h"

#include <filesystem>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/db.h"

namespace moeforge::trainer {

Status MakeSyntheticFaceWorkspace(const std::string& root, int n) {
  Workspace ws(root);
  MF_RETURN_IF_ERROR(ws.CreateDirs());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws, true));
  auto& d = *dbp;
  const auto& schema = TagSchema::Default();
  const char* hair[] = {"blonde_hair", "black_hair", "pink_hair", "blue_hair"};
  const cv::Scalar hair_bgr[] = {{80, 220, 250}, {30, 30, 30}, {200, 150, 250}, {220, 80, 40}};
  const char* eyes[] = {"blue_eyes", "red_eyes", "green_eyes"};
  const cv::Scalar eye_bgr[] = {{255, 0, 0}, {0, 0, 255}, {0, 200, 0}};
  std::filesystem::create_directories(root + "/crops");
  return d.Transaction([&]() -> Status {
    MF_RETURN_IF_ERROR(d.Exec("INSERT INTO detectors(id, name, model_sha256, params_json, created_at) "
                              "VALUES(1, 'test', 'x', '{}', 'now')"));
    MF_ASSIGN_OR_RETURN(db::Stmt tg, d.Prepare("INSERT INTO taggers(id, name, model_sha256, params_json, schema_toml, "
                                               "created_at) VALUES(1, 'builtin:test', 'y', '{}', ?, 'now')"));
    MF_RETURN_IF_ERROR(tg.Bind(1, schema.ToToml()).Run());
    MF_ASSIGN_OR_RETURN(db::Stmt img_row, d.Prepare("INSERT INTO images(sha256, bytes, added_at) VALUES(?, 1, 'now')"));
    MF_ASSIGN_OR_RETURN(db::Stmt face_row, d.Prepare(
        "INSERT INTO faces(id, detector_id, image_sha256, idx, x, y, w, h, crop_path, crop_size) "
        "VALUES(?, 1, ?, 0, 0, 0, 48, 48, ?, 48)"));
    MF_ASSIGN_OR_RETURN(db::Stmt tag_row,
                        d.Prepare("INSERT INTO face_tags(tagger_id, face_id, tag, score) VALUES(1, ?, ?, ?)"));
    for (int i = 0; i < n; ++i) {
      int h = i % 4, e = (i / 4) % 3;
      cv::Mat img(48, 48, CV_8UC3, cv::Scalar(230, 230, 240));
      img(cv::Rect(0, 0, 48, 18)).setTo(hair_bgr[h]);
      cv::circle(img, {16, 28}, 4, eye_bgr[e], -1);
      cv::circle(img, {32, 28}, 4, eye_bgr[e], -1);
      if (i % 5 == 0) cv::line(img, {18, 40}, {30, 40}, cv::Scalar(0, 0, 120), 2);
      std::string rel = "crops/f" + std::to_string(i) + ".png";
      if (!cv::imwrite(root + "/" + rel, img)) return Status::IoError("cannot write " + root + "/" + rel);
      std::string sha = "img" + std::to_string(i);
      MF_RETURN_IF_ERROR(img_row.Bind(1, sha).Run());
      MF_RETURN_IF_ERROR(face_row.BindAll(int64_t(i + 1), sha, rel).Run());
      for (const auto& tag : schema.tags()) {
        double score = (tag == hair[h] || tag == eyes[e] || (tag == "smile" && i % 5 == 0)) ? 0.95 : 0.02;
        MF_RETURN_IF_ERROR(tag_row.BindAll(int64_t(i + 1), tag, score).Run());
      }
    }
    return Status::Ok();
  });
}

}  // namespace moeforge::trainer
