/* The operator console: polls /api/admin/overview (admin only) every 2 s and pages /api/audit.
 * Every value from the server is written with textContent (never as HTML): audit rows carry
 * client-chosen strings. The token stays in this tab's sessionStorage. */
(function () {
  'use strict';
  var POLL_MS = 2000;
  var $ = function (id) {
    return document.getElementById(id);
  };
  var token = sessionStorage.getItem('syncConsoleToken') || '';
  var timer = null;
  var charts = null;
  var auditCursors = [null]; // cursor of each page seen (page i starts after auditCursors[i])
  var auditPage = 0;
  var auditNext = null;

  function setStatus(text, isError) {
    $('status').textContent = text;
    $('status').className = isError ? 'error' : '';
  }

  function api(path) {
    return fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' }).then(function (res) {
      if (res.status === 401 || res.status === 403) {
        var err = new Error(res.status === 401 ? 'not authenticated: an admin token is required' : 'forbidden: this token is not an admin');
        err.status = res.status;
        throw err;
      }
      return res.json().then(function (body) {
        if (!res.ok) throw new Error((body && body.message) || 'HTTP ' + res.status);
        return body;
      });
    });
  }

  function fmt(n, digits) {
    if (n === null || n === undefined) return '–';
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  function fillRows(tbody, rows) {
    tbody.textContent = '';
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = c === undefined || c === null ? '' : String(c);
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  function makeChart(el, series) {
    var width = Math.max(320, el.parentElement.clientWidth - 20);
    return new uPlot(
      { width: width, height: 180, series: [{}].concat(series), axes: [{}, { size: 60 }], legend: { live: false } },
      [
        [],
        ...series.map(function () {
          return [];
        }),
      ],
      el,
    );
  }

  function ensureCharts() {
    if (charts) return;
    charts = {
      rates: makeChart($('chart-rates'), [
        { label: 'changes/s', stroke: '#2563eb', width: 2 },
        { label: 'deliveries/s', stroke: '#16a34a', width: 2 },
        { label: 'refused/s', stroke: '#dc2626', width: 1 },
      ]),
      latency: makeChart($('chart-latency'), [
        { label: 'p50', stroke: '#7c3aed', width: 2 },
        { label: 'p99', stroke: '#ea580c', width: 2 },
      ]),
      connections: makeChart($('chart-connections'), [
        { label: 'connections', stroke: '#0891b2', width: 2 },
        { label: 'users', stroke: '#65a30d', width: 1 },
      ]),
    };
  }

  function render(o) {
    $('dashboard').hidden = false;
    $('figure-connections').textContent = fmt(o.connections, 0);
    $('figure-users').textContent = fmt(o.users.count, 0);
    $('figure-changes').textContent = fmt(o.rates.changesPerSecond);
    $('figure-deliveries').textContent = fmt(o.rates.deliveriesPerSecond);
    $('figure-p50').textContent = o.ackLatencyMs.p50 === null ? '–' : fmt(o.ackLatencyMs.p50) + ' ms';
    $('figure-p99').textContent = o.ackLatencyMs.p99 === null ? '–' : fmt(o.ackLatencyMs.p99) + ' ms';
    $('figure-applied').textContent = fmt(o.totals.applied, 0);
    $('figure-cluster').textContent = o.cluster.kind === 'redis' ? 'redis ' + o.cluster.status : o.cluster.status || o.cluster.kind;
    fillRows(
      $('acks').tBodies[0],
      Object.keys(o.acksByCode).map(function (k) {
        return [k, fmt(o.acksByCode[k], 0)];
      }),
    );
    $('feed-head').textContent = fmt(o.feed.head, 0);
    $('feed-highwater').textContent = fmt(o.feed.highWater, 0);
    $('feed-purged').textContent = fmt(o.feed.purgedThrough, 0);
    $('feed-retention').textContent = o.feed.retentionDays + ' days';
    fillRows(
      $('collections').tBodies[0],
      o.collections.map(function (c) {
        return [c.name, fmt(c.count, 0)];
      }),
    );
    var ul = $('users');
    ul.textContent = '';
    o.users.ids.forEach(function (id) {
      var li = document.createElement('li');
      li.textContent = id;
      ul.appendChild(li);
    });

    ensureCharts();
    var h = o.history;
    var t = h.map(function (s) {
      return s.t / 1000;
    });
    charts.rates.setData([
      t,
      h.map(function (s) {
        return s.changesPerSecond;
      }),
      h.map(function (s) {
        return s.deliveriesPerSecond;
      }),
      h.map(function (s) {
        return s.rejectedPerSecond;
      }),
    ]);
    charts.latency.setData([
      t,
      h.map(function (s) {
        return s.p50;
      }),
      h.map(function (s) {
        return s.p99;
      }),
    ]);
    charts.connections.setData([
      t,
      h.map(function (s) {
        return s.connections;
      }),
      h.map(function (s) {
        return s.users;
      }),
    ]);
    setStatus('live · updated ' + new Date(o.at).toLocaleTimeString());
  }

  function hideAll(message) {
    $('dashboard').hidden = true;
    setStatus(message, true);
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function poll() {
    api('/api/admin/overview').then(
      function (o) {
        render(o);
        timer = setTimeout(poll, POLL_MS);
      },
      function (e) {
        if (e.status) return hideAll(e.message);
        setStatus('could not reach the server: ' + e.message + ' (retrying)', true);
        timer = setTimeout(poll, POLL_MS * 2);
      },
    );
  }

  function auditQuery() {
    var f = $('audit-filters');
    var q = new URLSearchParams();
    ['collection', 'userId', 'code'].forEach(function (k) {
      if (f.elements[k].value) q.set(k, f.elements[k].value.trim());
    });
    ['from', 'to'].forEach(function (k) {
      if (f.elements[k].value) q.set(k, new Date(f.elements[k].value).toISOString());
    });
    q.set('limit', '25');
    var cursor = auditCursors[auditPage];
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  function loadAudit() {
    $('audit-error').textContent = '';
    api('/api/audit?' + auditQuery().toString()).then(
      function (page) {
        fillRows(
          $('audit').tBodies[0],
          page.items.map(function (r) {
            return [new Date(r.at).toLocaleString(), r.userId, r.code, r.collection, r.documentId, r.operation, r.reason, r.clientAddress];
          }),
        );
        auditNext = page.nextCursor;
        $('audit-next').disabled = !auditNext;
        $('audit-prev').disabled = auditPage === 0;
        $('audit-page').textContent = 'page ' + (auditPage + 1);
      },
      function (e) {
        if (e.status) return hideAll(e.message);
        $('audit-error').textContent = e.message;
      },
    );
  }

  function start() {
    if (!token) {
      hideAll('enter an admin token to open the console');
      return;
    }
    $('logout').hidden = false;
    setStatus('connecting…');
    if (timer) clearTimeout(timer);
    poll();
    auditCursors = [null];
    auditPage = 0;
    loadAudit();
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem('syncConsoleToken', token);
    start();
  });
  $('logout').addEventListener('click', function () {
    token = '';
    sessionStorage.removeItem('syncConsoleToken');
    $('logout').hidden = true;
    hideAll('token forgotten');
  });
  $('audit-filters').addEventListener('submit', function (ev) {
    ev.preventDefault();
    auditCursors = [null];
    auditPage = 0;
    loadAudit();
  });
  $('audit-next').addEventListener('click', function () {
    if (!auditNext) return;
    auditCursors[auditPage + 1] = auditNext;
    auditPage++;
    loadAudit();
  });
  $('audit-prev').addEventListener('click', function () {
    if (auditPage === 0) return;
    auditPage--;
    loadAudit();
  });
  start();
})();
