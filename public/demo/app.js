/* The demo page: a shared task list on the browser build of the SDK (global SyncSdk), with the
 * outbox and the documents in IndexedDB. window.demo exposes the client (used by the browser test). */
(function () {
  'use strict';
  var COLLECTION = 'tasks';
  var params = new URLSearchParams(location.search);
  var userId = params.get('user') || localStorage.getItem('sync-demo-user');
  if (!userId) {
    userId = 'guest-' + Math.random().toString(36).slice(2, 6);
    localStorage.setItem('sync-demo-user', userId);
  }
  var $ = function (id) {
    return document.getElementById(id);
  };
  $('user').textContent = userId;

  var client = new SyncSdk.SyncClient(location.origin, userId, 'demo:' + userId, {
    token: params.get('token') || undefined,
    logger: { warn: console.warn.bind(console), error: console.error.bind(console) },
  });
  window.demo = { client: client, userId: userId };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function render(tasks) {
    var ul = $('tasks');
    ul.textContent = '';
    tasks.forEach(function (t) {
      var li = el('li', { 'data-testid': 'task', 'data-id': t._id });
      if (t.completed) li.className = 'done';
      var box = el('input', { type: 'checkbox', 'data-testid': 'toggle', 'aria-label': 'done' });
      box.checked = !!t.completed;
      box.addEventListener('change', function () {
        client.makeChange('update', COLLECTION, t._id, { completed: box.checked }).catch(report);
      });
      li.appendChild(box);
      li.appendChild(el('span', { class: 'title', 'data-testid': 'title' }, String(t.title || '')));
      if (client.view.isPending(COLLECTION, t._id)) li.appendChild(el('span', { class: 'pending', 'data-testid': 'task-pending' }, 'pending'));
      li.appendChild(el('span', { class: 'owner' }, t.owner || ''));
      var del = el('button', { class: 'delete', title: 'delete', 'data-testid': 'delete' }, '×');
      del.addEventListener('click', function () {
        client.makeChange('delete', COLLECTION, t._id).catch(report);
      });
      li.appendChild(del);
      ul.appendChild(li);
    });
    $('empty').style.display = tasks.length ? 'none' : '';
  }

  function renderStatus() {
    var on = client.isOnline();
    var b = $('online');
    b.textContent = on ? 'online' : 'offline';
    b.className = 'badge ' + (on ? 'online' : 'offline');
    var n = client.getPendingChangesCount();
    var p = $('pending');
    p.textContent = n + ' pending';
    p.className = 'badge' + (n ? ' busy' : '');
    var last = client.getLastSyncTimestamp();
    $('last-sync').textContent = last ? 'last sync ' + new Date(last).toLocaleTimeString() : '';
  }

  function report(e) {
    $('log').textContent = (e && e.message) || String(e);
  }

  client.watch(COLLECTION, function (tasks) {
    render(tasks);
    renderStatus();
  });
  client.on('online', renderStatus);
  client.on('pending', renderStatus);
  client.on('synced', renderStatus);
  client.on('conflict', function (c) {
    report('Your change to "' + ((c.current && c.current.title) || c.change.documentId) + '" lost to a newer one.');
  });
  client.on('rejected', function (r) {
    report('The server refused a change (' + r.code + '): undone.');
  });
  client.on('error', report);

  $('add-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('title');
    var title = input.value.trim();
    if (!title) return;
    input.value = '';
    var id = 'task-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 6);
    client.makeChange('insert', COLLECTION, id, { title: title, completed: false, owner: userId }).catch(report);
  });

  $('go-offline').addEventListener('change', function (ev) {
    if (ev.target.checked) client.disconnect().then(renderStatus);
    else client.connect().catch(report);
  });

  $('switch-user').addEventListener('click', function (ev) {
    ev.preventDefault();
    var next = prompt('User id', userId);
    if (next && next !== userId) {
      localStorage.setItem('sync-demo-user', next);
      location.search = '?user=' + encodeURIComponent(next);
    }
  });

  client
    .initialize()
    .then(function () {
      return client.subscribe(COLLECTION);
    })
    .then(function () {
      return client.connect();
    })
    .catch(report)
    .then(renderStatus);
  setInterval(renderStatus, 5000);
})();
