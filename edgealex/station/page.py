"""The live page of :mod:`edgealex.station.http`: one self-contained HTML document (inline CSS and
plain JavaScript, no external resource, so it works on a LAN without internet). The script polls
``status.json`` once a second and carries the page's ``?token=`` over to every request."""

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgealex station</title>
<style>
  body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #111418; color: #e6e6e6; }
  header { padding: 10px 16px; background: #1b2027; display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #9aa4b1; font-size: 13px; }
  #state { font-weight: 600; }
  #state.live { color: #58c46b; } #state.down { color: #ef5350; }
  main { display: grid; grid-template-columns: minmax(320px, 2fr) minmax(260px, 1fr); gap: 16px; padding: 16px; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
  .view img { width: 100%; background: #000; border-radius: 4px; min-height: 120px; display: block; }
  .counters { display: grid; grid-template-columns: repeat(2, 1fr); gap: 8px; }
  .c { background: #1b2027; border-radius: 4px; padding: 8px 10px; }
  .c .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .c .k { color: #9aa4b1; font-size: 12px; }
  .c.defect .v { color: #ff7043; }
  #last { margin: 10px 0; padding: 8px 10px; border-radius: 4px; background: #1b2027; }
  #last.defect { background: #5a1d1d; } #last.ok { background: #1d4a27; } #last.uncertain { background: #5a4a12; }
  h2 { font-size: 14px; color: #9aa4b1; margin: 16px 0 8px; font-weight: 600; }
  #thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 8px; }
  #thumbs figure { margin: 0; background: #1b2027; border-radius: 4px; overflow: hidden; }
  #thumbs img { width: 100%; display: block; }
  #thumbs figcaption { font-size: 12px; padding: 4px 6px; color: #cfd6de; }
  footer { color: #6c7682; font-size: 12px; padding: 0 16px 16px; }
</style>
</head>
<body>
<header>
  <h1>edgealex station</h1>
  <span id="state" class="down">connecting</span>
  <span class="meta" id="model">model -</span>
  <span class="meta" id="source">source -</span>
</header>
<main>
  <section class="view">
    <img id="stream" alt="live annotated stream">
    <div id="last">last verdict -</div>
  </section>
  <section>
    <div class="counters">
      <div class="c"><div class="v" id="frames">-</div><div class="k">frames</div></div>
      <div class="c defect"><div class="v" id="defects">-</div><div class="k">defects</div></div>
      <div class="c"><div class="v" id="defect_rate">-</div><div class="k">defect rate</div></div>
      <div class="c"><div class="v" id="pipeline_fps">-</div><div class="k">pipeline fps (whole loop)</div></div>
      <div class="c"><div class="v" id="engine_fps">-</div><div class="k">engine fps (inference only)</div></div>
      <div class="c"><div class="v" id="dropped">-</div><div class="k">dropped frames</div></div>
      <div class="c"><div class="v" id="reconnects">-</div><div class="k">stalls / reconnects</div></div>
      <div class="c"><div class="v" id="errors">-</div><div class="k">frame errors</div></div>
    </div>
    <h2>Last defects</h2>
    <div id="thumbs"></div>
  </section>
</main>
<footer>read-only view &middot; <span id="threshold">threshold -</span> &middot; <span id="clients">-</span> viewer(s) &middot;
  updated <span id="updated">never</span> &middot; <a href="status.json" id="json" style="color:#8ab4f8">status.json</a></footer>
<script>
(function () {
  var params = new URLSearchParams(window.location.search);
  var token = params.get("token");
  function withToken(path, extra) {
    var q = [];
    if (token) { q.push("token=" + encodeURIComponent(token)); }
    if (extra) { q.push(extra); }
    return path + (q.length ? "?" + q.join("&") : "");
  }
  function text(id, value) { document.getElementById(id).textContent = value; }
  function num(value, digits) { return (value === null || value === undefined) ? "-" : Number(value).toFixed(digits); }
  function clock(epoch) { return new Date(epoch * 1000).toLocaleTimeString(); }
  var shownThumbs = "";
  function render(s) {
    var state = document.getElementById("state");
    state.textContent = "live"; state.className = "live";
    text("frames", s.frames);
    text("defects", s.defects);
    text("defect_rate", s.defect_rate === null ? "-" : (100 * s.defect_rate).toFixed(1) + " %");
    text("pipeline_fps", num(s.pipeline_fps, 1));
    text("engine_fps", num(s.engine_fps, 1));
    text("dropped", s.dropped === null ? "-" : s.dropped);
    text("reconnects", (s.stalls === null || s.stalls === undefined ? "-" : s.stalls) + " / " +
         (s.reconnects === null ? "-" : s.reconnects));
    text("errors", s.errors === null ? "-" : s.errors);
    var st = s.station || {};
    text("model", "model " + (st.model || "-"));
    text("source", "source " + (st.source || "-"));
    text("threshold", "threshold " + num(st.threshold, 2));
    text("clients", s.stream ? s.stream.clients : "-");
    text("updated", clock(s.time));
    var last = document.getElementById("last");
    if (s.last) {
      last.textContent = "frame " + s.last.frame + ": " + s.last.verdict.toUpperCase() + " - " + s.last["class"] +
        " " + (100 * s.last.confidence).toFixed(1) + " % at " + clock(s.last.time);
      last.className = s.last.verdict;
    }
    var recent = s.defects_recent || [];
    var key = recent.map(function (d) { return d.id; }).join(",");
    if (key !== shownThumbs) {
      shownThumbs = key;
      var box = document.getElementById("thumbs");
      box.innerHTML = "";
      recent.forEach(function (d) {
        var fig = document.createElement("figure");
        var img = document.createElement("img");
        img.src = withToken(d.url); img.alt = d["class"];
        var cap = document.createElement("figcaption");
        cap.textContent = d["class"] + " " + (100 * d.confidence).toFixed(0) + " % - " + clock(d.time) + " #" + d.frame;
        fig.appendChild(img); fig.appendChild(cap); box.appendChild(fig);
      });
    }
  }
  function down() { var state = document.getElementById("state"); state.textContent = "no connection"; state.className = "down"; }
  function poll() {
    fetch(withToken("status.json"), {cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(render, down);
  }
  document.getElementById("json").href = withToken("status.json");
  poll();
  setInterval(poll, 1000);
  window.addEventListener("load", function () { document.getElementById("stream").src = withToken("stream.mjpg"); });
  if (document.readyState === "complete") { document.getElementById("stream").src = withToken("stream.mjpg"); }
})();
</script>
</body>
</html>
"""
