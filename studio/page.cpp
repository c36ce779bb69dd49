// The generator page: a run picker, the run's tag groups (radio buttons with "random"
// for exclusive groups, checkboxes for the others), seed, n and the resulting grid.
#include "studio/page.h"
#include "core/strings.h"

#include <sstream>

namespace moeforge::server {

namespace {

const char* kStyle = R"CSS(
body { font-family: system-ui, sans-serif; margin: 0; background: #faf7f9; color: #222; }
header { background: #d94f7f; color: #fff; padding: 10px 18px; }
header h1 { font-size: 20px; margin: 0; display: inline-block; }
header span { margin-left: 12px; opacity: .85; font-size: 14px; }
main { display: flex; flex-wrap: wrap; gap: 18px; padding: 16px; }
#controls { flex: 0 1 460px; }
#result { flex: 1 1 400px; min-width: 300px; }
fieldset { border: 1px solid #e2c7d2; border-radius: 6px; margin: 0 0 10px; padding: 6px 10px; background: #fff; }
legend { font-weight: 600; font-size: 13px; color: #a3345b; }
label.opt { display: inline-block; margin: 2px 10px 2px 0; font-size: 13px; white-space: nowrap; }
.row { margin: 8px 0; font-size: 14px; }
.row input[type=number] { width: 9em; }
button { background: #d94f7f; color: #fff; border: 0; border-radius: 4px; padding: 6px 14px; font-size: 14px; cursor: pointer; }
button.small { background: #eee; color: #333; padding: 3px 8px; font-size: 12px; }
button:disabled { opacity: .5; cursor: wait; }
#grid { image-rendering: pixelated; border: 1px solid #ddd; background: #fff; max-width: 100%; }
#status { font-size: 13px; color: #555; margin: 6px 0; min-height: 1.2em; }
#status.error { color: #b00020; font-weight: 600; }
.note { color: #777; font-size: 12px; }
)CSS";

const char* kScript = R"JS(
(function () {
  var $ = function (id) { return document.getElementById(id); };
  function randomSeed() { return Math.floor(Math.random() * 4294967296); }
  var picker = $('run');
  if (picker) picker.addEventListener('change', function () {
    location.search = '?run=' + encodeURIComponent(picker.value);
  });
  $('reroll').addEventListener('click', function () { $('seed').value = randomSeed(); });
  if ($('seed').value === '') $('seed').value = randomSeed();
  var lastUrl = null;
  function setStatus(text, isError) {
    $('status').textContent = text;
    $('status').className = isError ? 'error' : '';
  }
  function generate(ev) {
    if (ev) ev.preventDefault();
    var form = $('form');
    if (!form.dataset.run) { setStatus('no run to sample from', true); return; }
    var tags = [];
    var inputs = form.querySelectorAll('input[data-tag]');
    for (var i = 0; i < inputs.length; ++i)
      if (inputs[i].checked && inputs[i].value !== '') tags.push(inputs[i].value);
    var q = new URLSearchParams();
    q.set('run', form.dataset.run);
    q.set('tags', tags.join(' '));
    q.set('seed', $('seed').value.trim());
    q.set('n', $('n').value.trim());
    var t0 = Date.now();
    $('generate').disabled = true;
    setStatus('generating...', false);
    fetch('api/sample.png?' + q.toString()).then(function (r) {
      if (!r.ok) return r.json().then(function (j) { throw new Error(j.error || ('HTTP ' + r.status)); },
                                      function () { throw new Error('HTTP ' + r.status); });
      var seed = r.headers.get('X-Moeforge-Seed');
      return r.blob().then(function (b) {
        if (lastUrl) URL.revokeObjectURL(lastUrl);
        lastUrl = URL.createObjectURL(b);
        var img = $('grid');
        img.onload = function () {
          // Small faces (32-64 px) are shown enlarged, pixel for pixel.
          var scale = Math.max(1, Math.floor(640 / img.naturalWidth));
          img.style.width = (img.naturalWidth * scale) + 'px';
        };
        img.src = lastUrl;
        img.hidden = false;
        setStatus('seed ' + seed + ', tags: ' + (tags.length ? tags.join(' ') : '(all random)') +
                  ', ' + ((Date.now() - t0) / 1000).toFixed(2) + ' s', false);
      });
    }).catch(function (e) { setStatus(e.message, true); })
      .then(function () { $('generate').disabled = false; });
  }
  $('form').addEventListener('submit', generate);
})();
)JS";

}  // namespace

std::string RenderPage(const PageModel& m) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    << "<title>moeforge serve" << (m.run.empty() ? "" : " - " + MarkupEscape(m.run)) << "</title>"
    << "<style>" << kStyle << "</style></head><body>\n"
    << "<header><h1>moeforge</h1><span>generate faces with chosen attributes</span></header>\n<main>\n"
    << "<section id=\"controls\">\n";

  // The run picker.
  h << "<div class=\"row\"><label for=\"run\">Run </label>";
  if (m.runs.empty()) {
    h << "<em>this workspace has no runs yet (moeforge train -w WS --run NAME)</em>";
  } else {
    h << "<select id=\"run\">";
    for (const auto& r : m.runs) {
      h << "<option value=\"" << MarkupEscape(r.name) << "\"" << (r.name == m.run ? " selected" : "") << ">"
        << MarkupEscape(r.name) << " (" << MarkupEscape(r.state) << ", step " << r.step;
      if (r.resolution > 0) h << ", " << r.resolution << " px";
      if (!r.has_checkpoint) h << ", no checkpoint";
      h << ")</option>";
    }
    h << "</select>";
  }
  h << "</div>\n";

  h << "<form id=\"form\" data-run=\"" << MarkupEscape(m.schema != nullptr ? m.run : "") << "\">\n";
  if (m.schema != nullptr) {
    const auto& groups = m.schema->groups();
    for (size_t g = 0; g < groups.size(); ++g) {
      const TagGroup& grp = groups[g];
      h << "<fieldset><legend>" << MarkupEscape(grp.name) << (grp.exclusive ? "" : " (any)") << "</legend>";
      std::string input_name = "g" + std::to_string(g);
      if (grp.exclusive) {
        h << "<label class=\"opt\"><input type=\"radio\" data-tag name=\"" << input_name
          << "\" value=\"\" checked> <em>random</em></label>";
        for (const auto& t : grp.tags)
          h << "<label class=\"opt\"><input type=\"radio\" data-tag name=\"" << input_name << "\" value=\""
            << MarkupEscape(t) << "\"> " << MarkupEscape(t) << "</label>";
      } else {
        for (const auto& t : grp.tags)
          h << "<label class=\"opt\"><input type=\"checkbox\" data-tag name=\"" << input_name << "\" value=\""
            << MarkupEscape(t) << "\"> " << MarkupEscape(t) << "</label>";
      }
      h << "</fieldset>\n";
    }
    h << "<p class=\"note\">A group left at <em>random</em> is drawn from the training data's frequencies; "
         "unchecked tags are off.</p>\n";
  } else if (!m.error.empty()) {
    h << "<p id=\"schema-error\" class=\"error\" style=\"color:#b00020\">" << MarkupEscape(m.error) << "</p>\n";
  }
  h << "<div class=\"row\"><label for=\"seed\">Seed </label><input id=\"seed\" type=\"number\" min=\"0\" "
       "step=\"1\" value=\"\"> <button type=\"button\" class=\"small\" id=\"reroll\">random</button></div>\n"
    << "<div class=\"row\"><label for=\"n\">Images </label><input id=\"n\" type=\"number\" min=\"1\" max=\""
    << m.max_n << "\" value=\"" << m.default_n << "\"></div>\n"
    << "<div class=\"row\"><button type=\"submit\" id=\"generate\"" << (m.schema != nullptr ? "" : " disabled")
    << ">Generate</button></div>\n"
    << "</form>\n</section>\n"
    << "<section id=\"result\"><div id=\"status\"></div><img id=\"grid\" alt=\"generated faces\" hidden>"
    << "</section>\n</main>\n<script>" << kScript << "</script>\n</body></html>\n";
  return h.str();
}

}  // namespace moeforge::server
