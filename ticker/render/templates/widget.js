(()=>{const d=document,p=parent!==window;let s=d.querySelector(".tk");
const h=()=>{p&&parent.postMessage({type:"ticker:height",height:Math.ceil(d.documentElement.getBoundingClientRect().height),title:d.title},"*")};
const q=o=>(o.querySelector(".tk-v b,.tk-pr")||{}).textContent;
const a=(n,l)=>{n.querySelectorAll("[data-k]").forEach(e=>{d.querySelectorAll('[data-k="'+e.dataset.k+'"]').forEach(o=>{const v=q(o);
if(o.innerHTML!==e.innerHTML)o.innerHTML=e.innerHTML;o.className=e.className;l&&v!==q(o)&&(o.offsetWidth,o.classList.add("tk-hl"))})});
const c=d.querySelector(".tk-copy");c&&(c.innerHTML=d.querySelector(".tk-tape ol").innerHTML,c.querySelectorAll("[data-k],.sr-only").forEach(e=>e.dataset.k?e.removeAttribute("data-k"):e.remove()));h()};
const r=()=>fetch(s.dataset.src,{cache:"no-cache"}).then(x=>x.ok?x.text():"").then(t=>{t&&a(new DOMParser().parseFromString(t,"text/html"))}).catch(()=>{});
s.dataset.live&&new EventSource(s.dataset.live).addEventListener("rows",e=>{const t=d.createElement("template");t.innerHTML=JSON.parse(e.data).html;a(t.content,1)});
setInterval(r,1e3*(+s.dataset.refresh||60));window.ResizeObserver&&new ResizeObserver(h).observe(d.body);addEventListener("load",h);h()})();
