#include "cli/options.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moeforge::cli {

CLI::Transformer BestSnapshotWord() {
  return CLI::Transformer(std::map<std::string, std::string>{{"best", std::to_string(trainer::kBestSnapshot)}});
}

namespace {
std::string FlagName(const std::string& name) {
  std::string f = "--" + name;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}
}  // namespace

template <typename T>
OptionTable& OptionTable::Add(const std::string& name, T* target, const std::string& help) {
  Entry e;
  e.key = table_ + "." + name;
  e.flags = FlagName(name);
  e.help = help;
  if constexpr (std::is_same_v<T, bool>) {
    e.add = [target](CLI::App* app, const std::string& flags, const std::string& h) {
      return app->add_flag(flags, *target, h);
    };
  } else if constexpr (std::is_same_v<T, std::vector<float>>) {
    e.add = [target](CLI::App* app, const std::string& flags, const std::string& h) {
      return app->add_option(flags, *target, h)->delimiter(',');
    };
  } else {
    e.add = [target](CLI::App* app, const std::string& flags, const std::string& h) {
      auto* opt = app->add_option(flags, *target, h)->capture_default_str();
      if constexpr (std::is_same_v<T, std::vector<int>>) opt->expected(1, -1);
      return opt;
    };
  }
  if constexpr (std::is_same_v<T, std::vector<float>>) {
    // TOML: one number for every tag (a list per tag is for the command line).
    e.bind = [target](ConfigBinder& b, const std::string& key) {
      double v = std::numeric_limits<double>::quiet_NaN();
      b.Bind(key, &v);
      if (!std::isnan(v)) *target = {static_cast<float>(v)};
    };
  } else {
    e.bind = [target](ConfigBinder& b, const std::string& key) { b.Bind(key, target); };
  }
  entries_.push_back(std::move(e));
  return *this;
}

template OptionTable& OptionTable::Add(const std::string&, std::string*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, int*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, int64_t*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, uint64_t*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, double*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, bool*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, std::vector<int>*, const std::string&);
template OptionTable& OptionTable::Add(const std::string&, std::vector<float>*, const std::string&);

OptionTable& OptionTable::Flags(const std::string& spec) {
  entries_.back().flags = spec;
  return *this;
}

OptionTable& OptionTable::Check(const CLI::Validator& v) {
  entries_.back().refine.push_back([v](CLI::Option* o) { o->check(v); });
  return *this;
}

OptionTable& OptionTable::Transform(const CLI::Validator& v) {
  entries_.back().refine.push_back([v](CLI::Option* o) { o->transform(v); });
  return *this;
}

OptionTable& OptionTable::Required() {
  entries_.back().refine.push_back([](CLI::Option* o) { o->required(); });
  return *this;
}

void OptionTable::AddFlags(CLI::App* app) const {
  for (const auto& e : entries_) {
    CLI::Option* o = e.add(app, e.flags, e.help);
    for (const auto& r : e.refine) r(o);
  }
}

void OptionTable::Bind(ConfigBinder& b) const {
  for (const auto& e : entries_) e.bind(b, e.key);
}

// --- the stages' options ---------------------------------------------------------------

OptionTable CrawlOptionTable(crawler::CrawlOptions* o) {
  OptionTable t("crawl");
  t.Add("source", &o->source, "danbooru|moebooru|gelbooru|urls|html|dir").Required();
  t.Add("url", &o->url, "API base URL (https://danbooru.donmai.us), URL list file, start page, or image folder")
      .Required();
  t.Add("tags", &o->tags, "Tag query for booru APIs, e.g. \"solo -monochrome\"");
  t.Add("limit", &o->limit, "Take at most this many posts/files (0: all)");
  t.Add("shard", &o->shard, "i/N: keep only the posts whose remote id hashes to part i of N (merge the parts)");
  t.Add("concurrency", &o->concurrency, "Image transfers in flight");
  t.Add("rate", &o->rate,
        "Requests per second to the site, API and file hosts together (0: polite default, one every 0.5-1.5 s; "
        "unlimited on loopback)");
  t.Add("jitter", &o->jitter_s, "Seconds added at random to each interval (-1: 1 s with the polite default, 0 with --rate)");
  t.Add("retry_after_max", &o->retry_after_max_s,
        "Honour a site's Retry-After up to this many seconds (longer waits are cut to this, with a message)");
  t.Add("robots", &o->robots, "robots.txt: auto (obey for urls/html, not for API pages), obey, ignore");
  t.Add("contact", &o->user_agent_contact, "E-mail or URL put in the User-Agent so site operators can reach you");
  t.Add("labels", &o->labels,
        "dir: CSV with a file column and tags/attribute columns (default: labels.csv or tags.csv in the folder, "
        "else .txt sidecars)");
  t.Add("max_bytes", &o->max_bytes, "Refuse files larger than this while downloading");
  t.Add("max_pixels", &o->max_pixels, "Refuse images whose header declares more pixels, before decoding");
  t.Add("near_dup_threshold", &o->near_dup_threshold,
        "dHash Hamming distance at or below which an image is a near duplicate (-1: off, max 7)");
  t.Add("depth", &o->depth, "html: link depth from the start page");
  t.Add("page_limit", &o->page_limit, "Posts per API page (0: the dialect's maximum)");
  t.Add("timeout", &o->timeout_s, "Seconds without progress before a transfer is abandoned");
  t.Add("retries", &o->retries, "Extra attempts for transient failures (5xx, 429, timeouts)");
  t.Add("ca_file", &o->ca_file, "Also trust the CA certificates in this PEM file for https (a private mirror)")
      .Check(CLI::ExistingFile);
  t.Add("min_size", &o->min_size, "Booru: skip posts smaller than WxH (from the API's sizes, before download)");
  t.Add("aspect", &o->aspect, "Booru: keep width/height within MIN:MAX, e.g. 0.5:2");
  t.Add("rating", &o->rating, "Booru: keep only these ratings, e.g. g,s or general,sensitive");
  t.Add("exclude_tags", &o->exclude_tags, "Booru: skip posts with any of these tags (space separated)");
  t.Add("ext", &o->ext, "Booru: keep only these file types, e.g. jpg,png,webp");
  t.Add("max_posts_per_query", &o->max_posts_per_query, "Booru: stop a query after this many posts passed the filters (the rest of that page counts as "
        "skipped max_posts_per_query)");
  t.Add("variant", &o->variant,
        "Booru: original, sample (the site's smaller rendition), or auto (the smallest with a short side of at "
        "least --min-variant-px)")
      .Check(CLI::IsMember({"original", "sample", "auto"}));
  t.Add("min_variant_px", &o->min_variant_px, "--variant auto: the shorter side a rendition needs");
  t.Add("write_metadata", &o->write_metadata, "Write <sha256>.json beside each stored blob: the post's API record");
  t.Add("quiet", &o->quiet, "No progress line");
  return t;
}

OptionTable DetectOptionTable(detector::DetectOptions* o) {
  OptionTable t("detect");
  t.Add("detector", &o->detector,
        "Backend: cascade (lbpcascade_animeface), haar (second anime cascade), yunet, yolo, whole (images that "
        "are already face crops); several joined by '+' fuse their boxes (e.g. cascade+yunet)");
  t.Add("model", &o->model, "Model name or path (default: the backend's own; for fusion one per backend joined by '+')");
  t.Add("crop_size", &o->crop_sizes, "Crop side(s) in pixels; repeat for several sizes");
  t.Add("margin", &o->margin, "Added on every side of the face box, as a fraction of its side (hair room)");
  t.Add("max_pad", &o->max_pad, "Drop faces whose crop would be more than this fraction padding");
  t.Add("min_face", &o->min_face, "Drop faces narrower than this many original pixels");
  t.Add("scale_factor", &o->scale_factor, "Cascade: image pyramid step");
  t.Add("min_neighbors", &o->min_neighbors, "Cascade: neighbours a detection needs");
  t.Add("input_size", &o->input_size, "yunet/yolo: network input side (multiple of 32)");
  t.Add("score_threshold", &o->score_threshold, "yunet/yolo: minimum score");
  t.Add("nms_threshold", &o->nms_threshold, "yunet/yolo: IoU above which NMS drops a box");
  t.Add("threads", &o->threads, "Worker threads (0: all cores)");
  t.Add("limit", &o->limit, "Process at most this many images (0: all)");
  t.Add("shard", &o->shard, "i/N: detect only the images whose SHA-256 hashes to part i of N");
  t.Add("retry_failed", &o->retry_failed, "Redo images this detector recorded as failed");
  return t;
}

OptionTable TagTrainOptionTable(tagger::TagTrainOptions* o) {
  OptionTable t("tag_train");
  t.Add("out", &o->out, "Model file (default: WS/models/builtin-tagger.pt)");
  t.Add("epochs", &o->epochs, "The most training epochs");
  t.Add("patience", &o->patience,
        "Stop after this many epochs without a better validation score (0 = never); the best epoch is kept");
  t.Add("multi_character", &o->multi_character,
        "Also learn from faces of multi-character posts (negatives for the tags the post lacks) (default on)")
      .Flags("--multi-character,!--no-multi-character");
  t.Add("augment", &o->augment, "Flip, zoom and shift training crops (default on)").Flags("--augment,!--no-augment");
  t.Add("label_smoothing", &o->label_smoothing, "Binary targets pulled this far towards 0.5");
  t.Add("multi_instance", &o->multi_instance,
        "A tag present on a multi-character post: left out (none), or 'at least one of its faces has it' "
        "through the post's noisy-or or max of the faces' probabilities")
      .Check(CLI::IsMember({"none", "noisy-or", "max"}));
  t.Add("flip_average", &o->flip_average,
        "The model scores each crop and its mirror image and averages (recorded in the model file)")
      .Flags("--flip-average,!--no-flip-average");
  t.Add("input_size", &o->input_size, "Crops are resized to this square");
  t.Add("batch", &o->batch, "Batch size");
  t.Add("lr", &o->lr, "AdamW learning rate");
  t.Add("width", &o->width, "Channels of the first conv block");
  t.Add("blocks", &o->blocks, "Conv blocks, each halving the side (a larger input may want one more)");
  t.Add("pool", &o->pool, "Global pool before the head: avg, or avgmax (average and max, for small features)")
      .Check(CLI::IsMember({"avg", "avgmax"}));
  t.Add("bf16", &o->bf16,
        "bf16 autocast in training where the CPU has native bf16 (AVX512-BF16/AMX); scoring stays fp32")
      .Flags("--bf16,!--no-bf16");
  t.Add("threads", &o->threads, "Threads (0 = all cores)");
  t.Add("val_fraction", &o->val_fraction, "Share of posts held out for threshold calibration");
  t.Add("seed", &o->seed, "Seed (split, init, augmentation)");
  t.Add("schema", &o->schema, "Tag schema TOML (default: the MakeGirlsMoe 34)");
  t.Add("detector", &o->detector, "Only faces of this detector");
  t.Add("max_faces", &o->max_faces, "Train on at most this many faces (0 = all)");
  return t;
}

OptionTable TagOptionTable(tagger::TagOptions* o) {
  OptionTable t("tag");
  t.Add("tagger", &o->tagger, "builtin:MODEL | wd14:DIR_OR_ONNX | i2v:DIR (prototxt + caffemodel + tag_list.json)");
  t.Add("threshold", &o->thresholds,
        "Decision threshold: one for every tag, or one per schema tag (default: the tagger's)");
  t.Add("batch", &o->batch, "Faces per forward pass");
  t.Add("threads", &o->threads, "Threads (0 = all cores)");
  t.Add("schema", &o->schema, "External taggers: tag schema TOML to map onto (default: the 34)");
  t.Add("detector", &o->detector, "Only faces of this detector (name as in v_faces)");
  t.Add("limit", &o->limit, "At most this many faces this run (0 = all)");
  t.Add("shard", &o->shard, "i/N: tag only the faces of images whose SHA-256 hashes to part i of N");
  return t;
}

OptionTable TrainOptionTable(trainer::TrainOptions* o) {
  OptionTable t("train");
  t.Add("view", &o->view, "Dataset view (\"\": every tagged face)");
  t.Add("run", &o->run, "Run name: WS/runs/<run>/");
  t.Add("tagger", &o->tagger, "Tagger whose tags to train on (\"\": the view's or the newest)");
  t.Add("resolution", &o->resolution, "Image side: 32, 64 or 128");
  t.Add("minutes", &o->minutes, "Also stop after this many minutes of training (0: no limit)")
      .Check(CLI::NonNegativeNumber);
  t.Add("cpu_minutes", &o->cpu_minutes,
        "Also stop after this many minutes of CPU time, all threads counted (0: no limit): equal compute "
        "for runs compared on a shared machine")
      .Check(CLI::NonNegativeNumber);
  t.Add("steps", &o->steps, "Total training steps (a resumed run continues up to this)");
  t.Add("batch", &o->batch, "Batch size");
  t.Add("threads", &o->threads, "CPU threads (0: all cores)");
  t.Add("resume", &o->resume, "Continue the run from its checkpoint, to the step (`moeforge run` decides itself)");
  t.Add("nproc", &o->nproc,
        "Data-parallel ranks (c10d: Gloo on CPU, NCCL on CUDA builds); --batch is per rank. Started here, or "
        "taken from WORLD_SIZE under torchrun/srun");
  t.Add("dist_timeout", &o->dist_timeout, "Seconds a collective waits for the other ranks before the run fails");
  t.Add("z_dim", &o->z_dim, "Noise dimensions");
  t.Add("g_channels", &o->g_channels, "Generator width");
  t.Add("g_blocks", &o->g_blocks, "Generator residual blocks");
  t.Add("d_channels", &o->d_channels, "Discriminator width at its first stage");
  t.Add("d_blocks", &o->d_blocks, "Discriminator residual blocks per stage");
  t.Add("upsample", &o->upsample, "How G doubles its size: shuffle (sub-pixel conv) or nearest (resize, then conv)");
  t.Add("d_down", &o->d_down, "How D halves its size: conv (4x4 stride 2) or pool (2x2 average pool, then 3x3 conv)");
  t.Add("d_mbstd", &o->d_mbstd,
        "Minibatch standard deviation: D's real/fake head also sees the spread of each group of N samples (0: off)");
  t.Add("template", &o->output_template,
        "A learned template under G's output, fitted to the training set at the start: none, mean (G starts at the "
        "mean face) or tags (at the mean face of the asked-for tags)");
  t.Add("lr", &o->lr, "Adam learning rate of G (and of D unless --lr-d)");
  t.Add("lr_d", &o->lr_d, "Adam learning rate of D (0: --lr)");
  t.Add("beta1", &o->beta1, "Adam beta1");
  t.Add("beta2", &o->beta2, "Adam beta2");
  t.Add("l_adv", &o->l_adv, "Weight of the real/fake loss (< 0: the number of tags)");
  t.Add("l_gp", &o->l_gp, "Weight of the DRAGAN gradient penalty");
  t.Add("gp_every", &o->gp_every, "Compute the penalty on every Nth step only, weighted N times (lazy regularisation)");
  t.Add("ema_kimg", &o->ema_kimg,
        "Half-life of the generator's moving average, in thousands of images (0: no average; sample, eval and "
        "serve use the average)");
  t.Add("ema_rampup", &o->ema_rampup,
        "Cap the half-life early on at this share of the images seen so far (0: no cap; StyleGAN2-ADA's "
        "small-data 0.05 made short runs swing, docs/runs)");
  t.Add("icnr", &o->icnr, "ICNR initialisation of the sub-pixel convolutions, against the checkerboard (default on)")
      .Flags("--icnr,!--no-icnr");
  t.Add("augment", &o->augment, "Differentiable augmentation of what D sees: any of color,translation,cutout, or none");
  t.Add("snapshot_every", &o->snapshot_every, "Snapshot the sampling generator every N steps");
  t.Add("keep_snapshots", &o->keep_snapshots, "Keep the newest N snapshots (0: none)");
  t.Add("checkpoint_every", &o->checkpoint_every, "Checkpoint every N steps (and at exit)");
  t.Add("sample_every", &o->sample_every, "Sample grid every N steps (and at exit)");
  t.Add("seed", &o->seed, "Random seed");
  t.Add("deterministic", &o->deterministic, "Deterministic algorithms (resume reproduces exactly)");
  t.Add("memory_format", &o->memory_format, "auto|contiguous|channels_last");
  t.Add("bf16", &o->bf16, "bfloat16 autocast on CPU (default on where the CPU has native bf16; --no-bf16: fp32)")
      .Flags("--bf16,!--no-bf16");
  return t;
}

OptionTable SampleOptionTable(trainer::SampleOptions* o) {
  OptionTable t("sample");
  t.Add("run", &o->run, "Run name (run: the [train] run)").Required();
  t.Add("tags", &o->tags,
        "Tags to draw (schema names); exclusive groups not named are drawn from the data, binary tags not named "
        "are off");
  t.Add("n", &o->n, "Number of images");
  t.Add("seed", &o->seed, "Noise seed");
  t.Add("interpolate_to", &o->interpolate_to_seed,
        "Second seed: n frames from --seed's noise to this one's, same tags (-1: off)");
  t.Add("columns", &o->columns, "Grid columns (0: about sqrt(n); a row for interpolation)");
  t.Add("by", &o->by,
        "Exclusive group (e.g. hair_color): one labelled row per tag of it, --n images per row, the same noise "
        "down each column");
  t.Add("scale", &o->scale, "Enlarge every image this many times (bicubic), for viewing");
  t.Add("truncation", &o->truncation, "Truncation psi: noise scaled towards its mean (1: off; 0: one face per set of tags)");
  t.Add("snapshot", &o->snapshot,
        "Sample the snapshot of this step (-1: the checkpoint; on the command line, best: the lowest FD "
        "`eval --all-snapshots` recorded)")
      .Transform(BestSnapshotWord());
  t.Add("raw", &o->raw, "The raw generator instead of its moving average");
  t.Add("threads", &o->threads, "CPU threads (0: all cores)");
  t.Add("out", &o->out, "Output PNG (run: relative to the workspace)").Flags("-o,--out").Required();
  return t;
}

OptionTable ServeOptionTable(studio::StudioOptions* o) {
  OptionTable t("serve");
  t.Add("host", &o->host, "Address to listen on");
  t.Add("port", &o->port, "Port (0: any free port; the first stdout line says which)").Check(CLI::Range(0, 65535));
  t.Add("run", &o->run, "Run the Generate page shows first (default: the newest run)");
  t.Add("snapshot", &o->snapshot,
        "Generate with the snapshot of this step (-1: the checkpoint; best: the lowest FD `eval "
        "--all-snapshots` recorded)")
      .Transform(BestSnapshotWord());
  t.Add("threads", &o->sample_threads, "CPU threads for one generation (0: all cores)").Check(CLI::Range(0, 1024));
  t.Add("http_threads", &o->http_threads, "HTTP worker threads").Check(CLI::Range(1, 256));
  t.Add("db_connections", &o->db_connections, "Read-only database connections shared by the workers")
      .Check(CLI::Range(1, 64));
  t.Add("max_n", &o->max_n, "Most images one generation may ask for").Check(CLI::Range(1, 1024));
  t.Add("max_queued", &o->max_queued, "Generations that may wait behind the running one (more get 503)")
      .Check(CLI::Range(0, 1024));
  t.Add("page_max", &o->page_max, "Most faces one dataset page may ask for").Check(CLI::Range(1, 10000));
  t.Add("max_body", &o->max_body, "Largest request body, bytes (413 past it)");
  t.Add("max_target", &o->max_target, "Longest request target (path and query), bytes (414 past it)");
  t.Add("max_headers", &o->max_headers, "Most request header fields (431 past it)").Check(CLI::Range(1, 1000));
  t.Add("max_header_bytes", &o->max_header_bytes, "Largest request headers together, bytes (431 past it)");
  return t;
}

}  // namespace moeforge::cli
